"""The reconcile delete policy: which tracked meetings a full pass shows to be gone.

Pure: ids and numbers in, ids out. A hard delete is visible only as absence from a full
pass, so deleting is the one decision the connector cannot take back; every rule here
errs towards keeping a meeting (a later clean pass deletes it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deletions:
    """What a pass deletes, and how many candidates it held back (malformed rows)."""

    meeting_ids: tuple[int, ...]
    held_back: int = 0


def deletions(
    tracked: Iterable[int],
    seen: Collection[int],
    *,
    unattributed: int,
    bound_ms: int,
    created_at: Callable[[int], int | None],
    touched: Collection[int] = (),
) -> Deletions:
    """The tracked meetings to delete after a pass that read every row up to ``bound_ms``.

    - ``seen``: ids the pass read (including the ones withheld as inconsistent or for a
      bad row: they exist);
    - ``unattributed``: malformed rows that name no readable meeting: any candidate could
      be one of them, so none is deleted (all are ``held_back``);
    - ``created_at(id)``: the tracked meeting's creation (epoch ms), None if it is no longer
      tracked; one created after the bound was not expected in the pass;
    - ``touched``: ids committed by another concern (polling) since the pass began: their
      absence may only mean the pass read past them before they were created.
    """
    candidates = [m for m in tracked if m not in seen and m not in touched]
    if unattributed:
        return Deletions((), held_back=len(candidates))
    gone: list[int] = []
    for meeting_id in candidates:
        created = created_at(meeting_id)
        if created is None or created > bound_ms:
            continue
        gone.append(meeting_id)
    return Deletions(tuple(gone))


__all__ = ["Deletions", "deletions"]
