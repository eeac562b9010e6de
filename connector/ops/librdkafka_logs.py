"""librdkafka's own log lines, routed through our logger, deduplicated and rate-limited.

Without a ``logger`` property librdkafka writes raw ``%3|...|FAIL|`` lines to stderr (about
20 a second against an unreachable broker). Every client gets :func:`kafka_logger` instead
(via ``KafkaSettings.kafka_client_config``): its lines become JSON log records on the
``connector.kafka`` logger, redacted like every other, and the same facility and message is
written at most once per ``every`` seconds, with the count of lines suppressed meanwhile.
Note that confluent-kafka delivers them from ``poll()``/``flush()`` of the client.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

LOGGER_NAME = "connector.kafka"
REPEAT_SECONDS = 30.0
# Parts of a librdkafka message that change from one repetition to the next.
_VARYING = re.compile(r"after \d+ms|\d+ identical error\(s\) suppressed")


class LogThrottle:
    """Admits one line per key every ``every`` seconds (pure: the clock is injected)."""

    def __init__(self, every: float, clock: Callable[[], float], max_keys: int = 1000) -> None:
        self._every = every
        self._clock = clock
        self._max_keys = max_keys
        self._seen: dict[object, tuple[float, int]] = {}

    def admit(self, key: object) -> int | None:
        """None to suppress; else how many lines of ``key`` were suppressed since the last."""
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._every:
            self._seen[key] = (last[0], last[1] + 1)
            return None
        if len(self._seen) >= self._max_keys:  # forget what has gone quiet
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self._every}
        self._seen[key] = (now, 0)
        return 0 if last is None else last[1]


class KafkaLogFilter(logging.Filter):
    """Rewrites confluent-kafka's ``("%s [%s] %s", fac, client, text)`` records, throttled."""

    def __init__(self, throttle: LogThrottle) -> None:
        super().__init__()
        self._throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        """Suppress a repetition; otherwise keep the text with facility and client as fields."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 3:
            facility, client, text = (str(a) for a in args)
        else:
            facility, client, text = "", "", record.getMessage()
        suppressed = self._throttle.admit((record.levelno, facility, _VARYING.sub("#", text)))
        if suppressed is None:
            return False
        record.msg, record.args = f"librdkafka {facility}: {text}", None
        record.kafka_facility, record.kafka_client = facility, client
        if suppressed:
            record.suppressed_repeats = suppressed
        return True


def kafka_logger(every: float = REPEAT_SECONDS) -> logging.Logger:
    """The logger every Kafka client of this process logs to (its filter installed once)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, KafkaLogFilter) for f in logger.filters):
        logger.addFilter(KafkaLogFilter(LogThrottle(every, time.monotonic)))
    return logger
