"""``connector.delete_checker``: the confirmation a candidate needs before it is deleted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.core.model import Meeting, Participant
from connector.ops.labels import Ask
from connector.source.export_page import ExportPage
from connector.state.store import Tracked
from connector.sync.deletes.checker import confirm_absent


@dataclass
class AccountRows:
    """An API that answers ``account_id`` requests from ``rows``, two rows per page."""

    rows: list[dict[str, Any]]
    asked: list[dict[str, Any]] = field(default_factory=list)

    async def fetch_page(self, event_id, window, page, per_page, extra_params=None):
        self.asked.append({"window": window, "page": page, **(extra_params or {})})
        mine = [r for r in self.rows if r["account_id"] == extra_params["account_id"]]
        per = 2
        pages = max(1, -(-len(mine) // per))
        return ExportPage(mine[(page - 1) * per : page * per], len(mine), pages, 0)


def tracked(meeting_id: int, *accounts: int) -> Tracked:
    meeting = Meeting(
        meeting_id=meeting_id,
        event_id=1,
        status="pending",
        start_at=0,
        end_at=0,
        location=None,
        created_at=0,
        modified_at=0,
        participants=tuple(Participant(a, "invitee", "pending") for a in accounts),
    )
    return Tracked(meeting, 1)


async def test_a_meeting_still_served_for_its_participant_is_not_confirmed_absent():
    """Its creation second in state was off (say an hour, after a fall-back): the leaf read
    missed it, but it exists; deleting it would be a delete that cannot be taken back."""
    api = AccountRows([{"meeting_id": m, "account_id": 7} for m in (3, 4, 5, 9)])
    sent = dict.fromkeys(Ask, 0)
    assert await confirm_absent(api, 1, tracked(9, 7, 8), sent) is False  # type: ignore[arg-type]
    assert [a["page"] for a in api.asked] == [1, 2]  # paged until found
    assert all(a["window"] is None and a["account_id"] == 7 for a in api.asked)
    assert sent[Ask.CONFIRM] == 2


async def test_a_meeting_gone_from_its_participant_rows_is_confirmed_absent():
    api = AccountRows([{"meeting_id": m, "account_id": 7} for m in (3, 4, 5)])
    sent = dict.fromkeys(Ask, 0)
    assert await confirm_absent(api, 1, tracked(9, 7), sent) is True  # type: ignore[arg-type]
    assert sent[Ask.CONFIRM] == 2
    assert await confirm_absent(api, 1, tracked(10), sent) is True  # type: ignore[arg-type]
    assert sent[Ask.CONFIRM] == 2  # no participant, no rows: nothing to ask
