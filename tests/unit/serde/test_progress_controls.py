"""The progress record's signal fields: kept through the state topic, absent in old records."""

from __future__ import annotations

import io
from dataclasses import replace

import fastavro

from connector.core.progress import EventProgress, Phase
from connector.serde import Serdes, SingleObjectFraming
from connector.serde.catalog import released

PROGRESS = EventProgress(
    event_id=7,
    phase=Phase.STREAMING,
    snapshot_upper=10,
    created_through=20,
    modified_through=30,
    last_reconcile_at=None,
    updated_at=40_000,
)


def test_paused_offsets_and_handled_ids_round_trip() -> None:
    serdes = Serdes(SingleObjectFraming())
    progress = replace(
        PROGRESS,
        paused=True,
        paused_by="sig",
        signal_offsets=((0, 12), (3, 4)),
        handled_signals=("a", "sig"),
    )
    assert serdes.decode_progress(serdes.encode_progress(progress)) == progress


def test_a_progress_record_of_0_1_0_decodes_as_not_paused() -> None:
    (_, old), *_ = list(released("StateValue"))
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body,
        old.plain,
        {
            "meeting": None,
            "progress": {
                "event_id": 7,
                "phase": "streaming",
                "snapshot_upper": 10,
                "created_through": 20,
                "modified_through": 30,
                "last_reconcile_at": None,
                "updated_at": 40_000,
            },
        },
    )
    decoded = Serdes(SingleObjectFraming()).decode_progress(
        old.single_object_header + body.getvalue()
    )
    assert decoded.paused is False
    assert decoded.paused_by is None
    assert decoded.signal_offsets is None
    assert decoded.handled_signals == ()
    assert decoded.created_through == 20
