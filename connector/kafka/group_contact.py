"""Whether this replica is in the replicas' group, read from librdkafka's statistics (pure).

The membership consumer emits its statistics every second (``statistics.interval.ms``); their
``cgrp`` object tells whether the group coordinator is reachable (``state`` ``up``) and
whether this member has joined and holds its assignment (``join_state`` ``steady``), and
``brokers`` the state of each connection. A replica out of the group (brokers unreachable,
session timed out, stuck rejoining) runs nothing and can take nothing over: readiness reports
it (``connector.ops.health``) once that lasts as long as an event may go without a commit.

No I/O, no clock: the statistics' JSON text in, a :class:`GroupContact` out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: librdkafka's ``cgrp.state`` once the coordinator is known and connected.
_COORDINATOR_UP = "up"
#: librdkafka's ``cgrp.join_state`` of a member that joined and carries out its assignment.
_JOINED = "steady"


@dataclass(frozen=True, slots=True)
class GroupContact:
    """This replica's standing in the group: ``in_group``, and ``detail`` when it is not
    (librdkafka's group states and the brokers that are not up, for ``/readyz``)."""

    in_group: bool
    detail: str = ""


def group_contact(stats_json: str) -> GroupContact | None:
    """The contact the statistics describe; None when they hold no group (not subscribed yet)
    or do not parse (nothing is known then, and the last contact stands)."""
    try:
        stats = json.loads(stats_json)
    except ValueError:
        return None
    group = stats.get("cgrp") if isinstance(stats, dict) else None
    if not isinstance(group, dict):
        return None
    state = group.get("state")
    join_state = group.get("join_state")
    if state == _COORDINATOR_UP and join_state == _JOINED:
        return GroupContact(True)
    brokers = stats.get("brokers")
    down = sorted(
        f"{name} {info.get('state')}"
        for name, info in (brokers.items() if isinstance(brokers, dict) else ())
        if isinstance(info, dict) and info.get("state") != "UP"
    )
    detail = f"group coordinator {state}, join {join_state}"
    if down:
        detail += f"; brokers not up: {', '.join(down)}"
    return GroupContact(False, detail)
