"""The per-event engine: what runs when, what one cycle stages, how it commits.

- ``schedule``: ``next_action()`` -> ``Run`` or ``Idle``; poll and pass timing (pure);
- ``engine``: ``EventSync``, an event's poller, reconciler and delete-checker tasks;
- ``cycles``: ``EventCycles``, what each kind of cycle does; ``Collaborators``;
- ``snapshot``, ``incremental``, ``reconcile``: the three kinds of cycle;
- ``batch``: one transaction's records, classified against staged state (pure);
- ``committer``: an event's one transaction in flight, in order; ``report``: ``CycleReport``;
- ``replicas``: ``Ownership``, the events of this replica's partitions;
- ``deletes/``: the delete policy, the delete check's bisection and its checker.
"""
