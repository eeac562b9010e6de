"""Deletes: a hard-deleted meeting only vanishes from the export.

- ``policy``: which tracked meetings a read proves deleted (pure);
- ``bisection``: the delete check's search (sans-io): ``Bisection`` yields requests, takes
  answers;
- ``checker``: one delete check, sending what the bisection asks and staging DELETED.
"""
