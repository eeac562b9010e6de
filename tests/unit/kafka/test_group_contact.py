"""group_contact: librdkafka's statistics -> in the replicas' group or not, and why."""

from __future__ import annotations

import json

import pytest

from connector.kafka.group_contact import GroupContact, group_contact


def stats(state: str | None, join_state: str | None, **brokers: str) -> str:
    cgrp = {} if state is None else {"cgrp": {"state": state, "join_state": join_state}}
    return json.dumps(
        {
            "name": "rdkafka#consumer-1",
            **cgrp,
            "brokers": {name: {"state": broker_state} for name, broker_state in brokers.items()},
        }
    )


def test_joined_with_the_coordinator_up_is_in_the_group() -> None:
    assert group_contact(stats("up", "steady", b1="UP")) == GroupContact(True)


def test_an_unreachable_coordinator_is_out_naming_the_brokers_down() -> None:
    # What librdkafka reports 2 s into a broker outage (seen against a real broker).
    contact = group_contact(
        stats("query-coord", "steady", **{"127.0.0.1:29392/bootstrap": "INIT", "x/1": "UP"})
    )

    assert contact == GroupContact(
        False,
        "group coordinator query-coord, join steady; "
        "brokers not up: 127.0.0.1:29392/bootstrap INIT",
    )


@pytest.mark.parametrize("join_state", ["init", "wait-join", "wait-sync", "wait-assign-call"])
def test_rejoining_is_out_of_the_group(join_state: str) -> None:
    contact = group_contact(stats("up", join_state, b1="UP"))

    assert contact == GroupContact(False, f"group coordinator up, join {join_state}")


@pytest.mark.parametrize("text", ["", "{", "[]", '{"brokers": {}}', stats(None, None)])
def test_statistics_without_a_group_tell_nothing(text: str) -> None:
    assert group_contact(text) is None
