"""The state: what was last published per meeting, read back from the compacted topic.

- ``store``: ``EventState`` (the in-memory view), ``Staging`` (a transaction's overlay),
  ``Tracked`` (pure);
- ``values``: meeting id -> encoded state value, zstd with a trained dictionary (pure);
- ``row_index``: ``RowIndex``, (creation second, meeting id) -> export rows (pure);
- ``restore``: an event's state partitions read to their end into its ``EventState``.
"""
