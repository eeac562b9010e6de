"""Workload: seeding an event with realistic meetings, and background churn.

Deterministic for a given ``--seed`` relative to the moment the simulator starts (event days
begin at the next local midnight; creation times lie in the 30 days before start-up).
Seeding builds meetings directly and bulk-loads them, so 100,000 meetings take a few
seconds at most; churn goes through the store's ordinary writes, like admin calls.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from meetings_simulator.model import SimMeeting, SimParticipant, participant_status_for
from meetings_simulator.store import MeetingStore

EVENT_DAYS = 3
DAY_OPENS_HOUR = 9
SLOTS_PER_DAY = 36  # 09:00-18:00 in 15-minute steps
DURATIONS = (15, 30, 45)
STATUS_WEIGHTS = {"pending": 30, "confirmed": 50, "cancelled": 10, "declined": 10}
PARTICIPANT_COUNTS = (2, 2, 2, 3, 3, 4)
HALLS = ("Hall A", "Hall B", "Hall C", "Business Lounge", "Meeting Area 2")
TITLES = (
    "Product demo",
    "Partnership discussion",
    "Pricing and volumes",
    "Intro meeting",
    "Distribution in DACH",
    "Follow-up",
    "Supplier audit",
    "Logistics options",
    "Private label enquiry",
    "Tech deep-dive",
)
NOTES = (
    None,
    None,
    None,
    None,
    "Bring samples",
    "Needs an interpreter (ES)",
    "Reschedule if the keynote overruns",
    "Meet at the booth first",
)
#: Relative frequency of each churn operation.
CHURN_MIX = {
    "create": 20,
    "reschedule": 18,
    "confirm": 18,
    "cancel": 8,
    "decline": 7,
    "participants": 10,
    "location": 12,
    "details": 4,
    "delete": 3,
}


@dataclass(frozen=True, slots=True)
class EventPlan:
    """Where an event's meetings fall: its days and its pool of attendee accounts."""

    event_id: int
    first_day: int  # unix second of the first event day's local midnight
    accounts: int

    def account_id(self, k: int) -> int:
        """The k-th attendee account of this event (0-based)."""
        return self.event_id * 10_000_000 + 1 + k


def plan_event(event_id: int, meetings: int, now: int, tz: tzinfo) -> EventPlan:
    """Event days start at the next local midnight after ``now``; ~6 meetings per account."""
    local = datetime.fromtimestamp(now, tz)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return EventPlan(event_id, int(midnight.timestamp()), max(20, meetings // 2))


def _slot(rng: random.Random, plan: EventPlan) -> tuple[int, int]:
    day = rng.randrange(EVENT_DAYS)
    start = (
        plan.first_day + day * 86_400 + DAY_OPENS_HOUR * 3600 + rng.randrange(SLOTS_PER_DAY) * 900
    )
    return start, rng.choice(DURATIONS)


def _location(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    return f"{rng.choice(HALLS)}, Table {rng.randint(1, 120)}"


def _participants(rng: random.Random, plan: EventPlan, status: str) -> tuple[SimParticipant, ...]:
    picks = rng.sample(range(plan.accounts), rng.choice(PARTICIPANT_COUNTS))
    people = []
    for i, k in enumerate(picks):
        role = "requester" if i == 0 else "invitee"
        people.append(
            SimParticipant(plan.account_id(k), role, participant_status_for(status, role))
        )
    return tuple(sorted(people, key=lambda p: p.account_id))


def _status(rng: random.Random) -> str:
    return rng.choices(tuple(STATUS_WEIGHTS), weights=tuple(STATUS_WEIGHTS.values()))[0]


def seeded_meeting(rng: random.Random, plan: EventPlan, meeting_id: int, now: int) -> SimMeeting:
    """One meeting of ``plan``'s event as seeding makes them (created in the 30 days
    before ``now``; most not pending ones touched since), drawn from ``rng``."""
    status = _status(rng)
    start, duration = _slot(rng, plan)
    participants = _participants(rng, plan, status)
    created = now - rng.randrange(30 * 86_400)
    touched = status != "pending" or rng.random() < 0.3
    updated = created + rng.randrange(now - created + 1) if touched else created
    return SimMeeting(
        meeting_id=meeting_id,
        event_id=plan.event_id,
        status=status,
        start=start,
        duration_minutes=duration,
        location=_location(rng),
        created_at=created,
        updated_at=updated,
        participants=participants,
        title=rng.choice(TITLES),
        meeting_type="group" if len(participants) > 3 else "one-to-one",
        notes=rng.choice(NOTES),
    )


def seed_store(
    store: MeetingStore,
    *,
    event_ids: Sequence[int],
    meetings: int,
    seed: int,
    now: int,
    tz: tzinfo,
) -> list[EventPlan]:
    """Bulk-load ``meetings`` meetings spread evenly over ``event_ids``; return the plans."""
    rng = random.Random(seed)  # noqa: S311 - simulation, not crypto
    plans = []
    built: list[SimMeeting] = []
    for position, event_id in enumerate(event_ids):
        share = meetings // len(event_ids) + (1 if position < meetings % len(event_ids) else 0)
        plan = plan_event(event_id, share, now, tz)
        plans.append(plan)
        built.extend(seeded_meeting(rng, plan, store.allocate_id(), now) for _ in range(share))
    store.bulk_load(built)
    return plans


class Churn:
    """Random realistic changes to an event's meetings, at a steady average rate."""

    def __init__(self, store: MeetingStore, plans: Sequence[EventPlan], seed: int) -> None:
        self.store = store
        self.plans = list(plans)
        self.rng = random.Random(seed ^ 0x5EED)  # noqa: S311 - simulation, not crypto
        self.applied: Counter[str] = Counter()

    def step(self) -> str:
        """Apply one random operation; return its name (from :data:`CHURN_MIX`)."""
        rng = self.rng
        plan = rng.choice(self.plans)
        op = rng.choices(tuple(CHURN_MIX), weights=tuple(CHURN_MIX.values()))[0]
        meeting = self.store.random_meeting(plan.event_id, rng)
        if op == "create" or meeting is None:
            status = rng.choice(("pending", "pending", "confirmed"))
            start, duration = _slot(rng, plan)
            self.store.create(
                event_id=plan.event_id,
                start=start,
                duration_minutes=duration,
                status=status,
                participants=_participants(rng, plan, status),
                location=_location(rng),
                title=rng.choice(TITLES),
                notes=rng.choice(NOTES),
            )
            op = "create"
        else:
            self._change(op, meeting, plan)
        self.applied[op] += 1
        return op

    def _change(self, op: str, meeting: SimMeeting, plan: EventPlan) -> None:
        rng, mid = self.rng, meeting.meeting_id
        if op == "reschedule":
            start, duration = _slot(rng, plan)
            self.store.update(mid, start=start, duration_minutes=duration)
        elif op in ("confirm", "cancel", "decline"):
            status = {"confirm": "confirmed", "cancel": "cancelled", "decline": "declined"}[op]
            people = meeting.participants
            if op != "cancel":
                people = tuple(
                    SimParticipant(p.account_id, p.role, participant_status_for(status, p.role))
                    for p in people
                )
            self.store.update(mid, status=status, participants=people)
        elif op == "participants":
            self.store.update(mid, participants=self._reshuffle(meeting, plan))
        elif op == "location":
            self.store.update(mid, location=_location(rng))
        elif op == "details":
            self.store.update(mid, title=rng.choice(TITLES), notes=rng.choice(NOTES))
        else:
            self.store.delete(mid)

    def _reshuffle(self, meeting: SimMeeting, plan: EventPlan) -> tuple[SimParticipant, ...]:
        people = list(meeting.participants)
        invitees = [p for p in people if p.role == "invitee"]
        if len(people) > 2 and (len(people) == 4 or self.rng.random() < 0.5):
            people.remove(self.rng.choice(invitees))
        else:
            taken = set(meeting.account_ids)
            account = plan.account_id(self.rng.randrange(plan.accounts))
            if account not in taken:
                status = participant_status_for(meeting.status, "invitee")
                people.append(SimParticipant(account, "invitee", status))
        return tuple(people)

    async def run(self, per_second: float) -> None:
        """Apply changes at ``per_second`` on average until cancelled."""
        if per_second <= 0:
            return
        tick = min(0.1, 1.0 / per_second)
        loop = asyncio.get_running_loop()
        owed, last = 0.0, loop.time()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            owed += (now - last) * per_second
            last = now
            while owed >= 1.0:
                self.step()
                owed -= 1.0
