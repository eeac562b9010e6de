"""librdkafka log lines: deduplicated and rate-limited, with the suppressed count."""

from __future__ import annotations

import logging

from connector.ops.librdkafka_logs import KafkaLogFilter, LogThrottle

FAIL = (
    "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 "
    "failed: Connection refused (after {ms}ms in state CONNECT)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(text: str) -> logging.LogRecord:
    return logging.LogRecord(
        "connector.kafka", logging.ERROR, "", 0, "%s [%s] %s", ("FAIL", "rdkafka#p-1", text), None
    )


def test_repetitions_are_suppressed_then_counted() -> None:
    clock = Clock()
    filt = KafkaLogFilter(LogThrottle(30.0, clock))
    first = record(FAIL.format(ms=0))
    assert filt.filter(first)
    assert first.getMessage().startswith("librdkafka FAIL: [thrd:127.0.0.1:1/bootstrap]")
    for ms in range(1, 580):  # what 30 s against a dead broker used to print
        clock.now += 0.05
        assert not filt.filter(record(FAIL.format(ms=ms)))
    clock.now = 30.0
    again = record(FAIL.format(ms=3))
    assert filt.filter(again)
    assert again.suppressed_repeats == 579


def test_different_messages_are_not_merged() -> None:
    filt = KafkaLogFilter(LogThrottle(30.0, Clock()))
    assert filt.filter(record(FAIL.format(ms=0)))
    assert filt.filter(record(FAIL.format(ms=0).replace("127.0.0.1:1", "127.0.0.1:2")))


def test_throttle_forgets_quiet_keys_beyond_its_bound() -> None:
    clock = Clock()
    throttle = LogThrottle(1.0, clock, max_keys=2)
    assert throttle.admit("a") == 0
    assert throttle.admit("b") == 0
    clock.now = 5.0
    assert throttle.admit("c") == 0
    assert throttle.admit("c") is None
