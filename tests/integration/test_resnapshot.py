"""Re-snapshots of a real connector process (``resnapshot`` / ``cancel-resnapshot``, issue 32).

Driven through the external contracts only: signal records (``meetings-cdc signal`` and a
plain producer), the changes and notifications topics, ``meetings-cdc state show``, and the
simulator's ground truth.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from connector.core.signals import SignalKind, signal_json
from meetings_simulator.app import SimulatorConfig
from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, free_port
from tests.integration.test_signals import TopicReader, cli, env_of, has, signal, write_raw

EVENT = 1


def resent(events: list[dict[str, Any]], signal_id: str) -> list[dict[str, Any]]:
    """The change events a re-snapshot published."""
    return [e for e in events if e["source"].get("signal_id") == signal_id]


def final(notes: TopicReader, signal_id: str) -> list[dict[str, Any]]:
    return [n for n in notes.of(signal_id) if n["status"] in ("COMPLETED", "FAILED", "REJECTED")]


async def snapshot_done(notes: TopicReader, changes: ChangeLog, meetings: int) -> None:
    await notes.wait_for(
        lambda r: any(n["kind"] == "snapshot" and n["status"] == "COMPLETED" for n in r),
        90,
        "the snapshot",
    )
    await changes.wait_for(lambda e: len(e) >= meetings, 30, "the snapshot's events")


async def test_a_resnapshot_resends_every_live_meeting_once_and_completes_once(
    simulator_factory, kafka_bootstrap, unique_name
):
    simulator = await simulator_factory(SimulatorConfig(meetings=2_500, seed=7))
    name, port = unique_name("resnap"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, str(EVENT), port)
    # deletes are found only by the re-snapshot: no delete check, no pass during the test
    env["MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS"] = "0"
    env["MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS"] = "3600"
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    notes = TopicReader(kafka_bootstrap, env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"], "Notification")
    connector = await ConnectorProcess(env).start()
    try:
        live = {m["meeting_id"]: m for m in await simulator.truth(EVENT)}
        await snapshot_done(notes, changes, len(live))
        gone, patched = sorted(live)[:2]
        await simulator.delete(gone)  # a hard delete polling cannot see
        await simulator.patch(patched, status="cancelled")
        await changes.wait_for(has(patched, "CANCELLED"), 30, "the cancel polled")
        live[patched] = next(m for m in await simulator.truth(EVENT) if m["meeting_id"] == patched)
        versions = {m: changes.of(m)[-1]["version"] for m in live}

        first, second = f"resnap-{uuid.uuid4().hex}", f"resnap-{uuid.uuid4().hex}"
        topic = env["MEETINGS_CDC_SIGNALS_TOPIC"]
        write_raw(kafka_bootstrap, topic, first.encode(), signal_json(SignalKind.RESNAPSHOT, EVENT))
        write_raw(
            kafka_bootstrap, topic, second.encode(), signal_json(SignalKind.RESNAPSHOT, EVENT)
        )
        await notes.wait_for(lambda r: final(notes, first), 90, "the re-snapshot's end")
        await changes.settle(1.5)
        await notes.settle(1.0)

        [started] = [n for n in notes.of(first) if n["status"] == "STARTED"]
        [done] = final(notes, first)
        assert done["status"] == "COMPLETED", done
        assert done["at"] >= started["at"]
        [rejected] = notes.of(second)
        assert rejected["status"] == "REJECTED"
        assert first in rejected["reason"]

        del live[gone]
        events = resent(changes.events, first)
        by_meeting: dict[int, list[dict[str, Any]]] = {}
        for event in events:
            by_meeting.setdefault(event["meeting_id"], []).append(event)
        assert set(by_meeting) == set(live) | {gone}
        assert all(len(v) == 1 for v in by_meeting.values()), "a meeting re-sent twice"
        for meeting_id in live:
            [event] = by_meeting[meeting_id]
            assert event["change_type"] == "SNAPSHOT"
            assert event["source"]["window_kind"] == "resnapshot"
            assert event["version"] == versions[meeting_id]  # the same version: a re-send
            assert event["after"]["status"] == live[meeting_id]["status"]
        [deleted] = by_meeting[gone]
        assert deleted["change_type"] == "DELETED"
        assert deleted["version"] > versions[gone]
        assert done["counts"]["snapshot"] == len(live)
        assert done["counts"]["deleted"] == 1

        code, out, err = await cli(env, "state", "show", "--event-id", str(EVENT))
        assert code == 0, err
        assert json.loads(out)["resnapshot"] is None
    finally:
        await connector.stop_quietly()
        changes.close()
        notes.close()


async def test_a_resnapshot_killed_half_way_goes_on_after_the_restart_and_sends_each_once(
    simulator_factory, kafka_bootstrap, unique_name
):
    simulator = await simulator_factory(SimulatorConfig(meetings=5_000, seed=11))
    name, port = unique_name("resnap-kill"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, str(EVENT), port)
    env["MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS"] = "0"
    env["MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS"] = "3600"
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    notes = TopicReader(kafka_bootstrap, env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"], "Notification")
    connector = await ConnectorProcess(env).start()
    try:
        live = {m["meeting_id"] for m in await simulator.truth(EVENT)}
        await snapshot_done(notes, changes, len(live))
        await simulator.set_faults(latency_ms=150)  # a re-read of some seconds, not at once
        signal_id = f"resnap-{uuid.uuid4().hex}"
        write_raw(
            kafka_bootstrap,
            env["MEETINGS_CDC_SIGNALS_TOPIC"],
            signal_id.encode(),
            signal_json(SignalKind.RESNAPSHOT, EVENT),
        )
        await changes.wait_for(lambda e: resent(e, signal_id), 60, "the first re-sent part")
        await connector.kill()  # SIGKILL half-way
        sent_before = {e["meeting_id"] for e in resent(changes.events, signal_id)}
        assert 0 < len(sent_before) < len(live), "not half-way: the test proves nothing"

        code, out, err = await cli(env, "state", "show", "--event-id", str(EVENT))
        assert code == 0, err
        shown = json.loads(out)["resnapshot"]
        assert shown["signal_id"] == signal_id
        assert shown["through"] is not None

        await simulator.set_faults(latency_ms=0)
        connector = await ConnectorProcess(env).start()
        await notes.wait_for(lambda r: final(notes, signal_id), 90, "the re-snapshot's end")
        await changes.settle(1.5)
        await notes.settle(1.0)
        assert [n["status"] for n in final(notes, signal_id)] == ["COMPLETED"]
        sent = [e["meeting_id"] for e in resent(changes.events, signal_id)]
        assert sorted(sent) == sorted(live), "a meeting re-sent twice or not at all"
    finally:
        await connector.stop_quietly()
        changes.close()
        notes.close()


async def test_listed_meetings_only_and_a_cancel_stops_a_running_resnapshot(
    simulator_factory, kafka_bootstrap, unique_name
):
    simulator = await simulator_factory(SimulatorConfig(meetings=3_000, seed=5))
    name, port = unique_name("resnap-cancel"), free_port()
    env = env_of(simulator, kafka_bootstrap, name, str(EVENT), port)
    changes = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    notes = TopicReader(kafka_bootstrap, env["MEETINGS_CDC_NOTIFICATIONS_TOPIC"], "Notification")
    connector = await ConnectorProcess(env).start()
    try:
        live = sorted(m["meeting_id"] for m in await simulator.truth(EVENT))
        await snapshot_done(notes, changes, len(live))
        args = ("--event-id", str(EVENT))

        code, _, err = await signal(env, "cancel-resnapshot", *args)
        assert code == 1
        assert "no re-snapshot runs" in err

        listed = [live[3], live[-1]]
        unknown = max(live) + 1_000
        ids = [a for m in (*listed, unknown) for a in ("--meeting-id", str(m))]
        code, subset, err = await signal(env, "resnapshot", *args, *ids)
        assert code == 0, err
        await changes.settle(1.0)
        assert sorted(e["meeting_id"] for e in resent(changes.events, subset)) == listed
        await notes.wait_for(lambda r: final(notes, subset), 10, "the subset's COMPLETED")
        [done] = final(notes, subset)
        assert (done["counts"]["snapshot"], done["counts"]["not_found"]) == (2, 1)

        await simulator.set_faults(latency_ms=200)  # long enough to be cancelled
        everything = f"resnap-{uuid.uuid4().hex}"
        write_raw(
            kafka_bootstrap,
            env["MEETINGS_CDC_SIGNALS_TOPIC"],
            everything.encode(),
            signal_json(SignalKind.RESNAPSHOT, EVENT),
        )
        await notes.wait_for(lambda r: notes.of(everything), 30, "the STARTED")
        code, cancel, err = await signal(env, "cancel-resnapshot", *args)
        assert code == 0, err
        await notes.wait_for(lambda r: final(notes, everything), 30, "the cancelled one's end")
        [failed] = final(notes, everything)
        assert failed["status"] == "FAILED"
        assert cancel in failed["reason"]
        await simulator.set_faults(latency_ms=0)
        await changes.settle(3.0)  # no part after the cancel
        assert len(resent(changes.events, everything)) < len(live)
        code, out, err = await cli(env, "state", "show", *args)
        assert json.loads(out)["resnapshot"] is None
    finally:
        await connector.stop_quietly()
        changes.close()
        notes.close()
