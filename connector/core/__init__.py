"""The core: the values every layer speaks in. Pure (no I/O, no clock, no asyncio).

- ``model``: ``Meeting`` and ``Participant``, frozen values; ``content_hash``;
- ``changes``: ``ChangeType``, ``classify(before, after)`` -> ``Change``; ``ChangeEvent``
  and its ``SourceInfo``;
- ``progress``: ``EventProgress``, an event's phase and watermarks;
- ``masking``: the field rules (hash, redact, drop) and the ``Masker`` that applies them;
- ``kinds``: ``WindowKind`` and ``CycleKind``, the names of windows and cycles;
- ``timestamps``: how every command prints an instant.
"""
