"""``tail --format summary``: one readable line per change event."""

from __future__ import annotations

from connector.cli.tail_lines import summary


def test_a_change_event_becomes_one_line_with_what_changed():
    line = summary(
        {
            "change_type": "RESCHEDULED",
            "event_id": 42,
            "meeting_id": 913,
            "version": 3,
            "changed_fields": ["end_at", "start_at"],
            "before": {"status": "confirmed", "start_at": "2026-11-25T10:00:00Z"},
            "after": {
                "status": "confirmed",
                "start_at": "2026-11-25T11:30:00Z",
                "location": "Hall B",
            },
        }
    )

    assert "\n" not in line
    assert line.startswith("RESCHEDULED")
    for part in (
        "event 42",
        "meeting 913",
        "v3",
        "2026-11-25 11:30",
        "Hall B",
        "changed: end_at,start_at",
    ):
        assert part in line


def test_a_deletion_describes_the_meeting_as_it_was():
    line = summary(
        {
            "change_type": "DELETED",
            "event_id": 1,
            "meeting_id": 7,
            "version": 4,
            "changed_fields": [],
            "before": {"status": "declined", "location": "Table 9"},
            "after": None,
        }
    )

    assert "DELETED" in line
    assert "declined" in line
    assert "Table 9" in line


def test_records_that_are_not_change_events_stay_json():
    assert summary({"key": {"event_id": 1}, "tombstone": True}).startswith("{")
