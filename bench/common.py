"""What every benchmark shares: the broker, unique topics, process CPU and RSS, summaries."""

from __future__ import annotations

import contextlib
import os
import statistics
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

BOOTSTRAP_VARIABLE = "MEETINGS_CDC_BENCH_BOOTSTRAP"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def bootstrap() -> str:
    """The broker the benchmarks run against."""
    return os.environ.get(BOOTSTRAP_VARIABLE, "127.0.0.1:19092")


def unique_name(what: str) -> str:
    """A fresh name for this run's connector and topics (``bench-<what>-<hex>``)."""
    return f"bench-{what}-{uuid.uuid4().hex[:8]}"


def delete_topics(names: Iterable[str]) -> None:
    """Delete this run's topics (1M-record state topics eat disk); missing ones are fine."""
    names = list(names)
    if not names:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    for future in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(KafkaException):
            future.result(timeout=30)


@contextlib.contextmanager
def topics_deleted_after(names: list[str]) -> Iterator[list[str]]:
    """Yield ``names`` (extend it with topics created inside); delete them all afterwards."""
    try:
        yield names
    finally:
        delete_topics(names)


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of ``pid`` (default: this process) in bytes, from /proc."""
    with open(f"/proc/{pid or 'self'}/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and every value."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


def record(results: dict[str, Any], key: str, values: Sequence[float], digits: int = 0) -> None:
    """Store the median of ``values`` as ``key`` and [min, max] as ``key_spread``."""
    s = summary(values)

    def rounded(v: float) -> float:
        return round(v) if digits == 0 else round(v, digits)

    results[key] = rounded(s["median"])
    results[f"{key}_spread"] = [rounded(s["min"]), rounded(s["max"])]
    results.setdefault("_runs", {})[key] = [rounded(v) for v in values]


def fmt(s: dict[str, Any], unit: str = "", digits: int = 0) -> str:
    """``median unit (min-max, n runs)``."""
    f = f"{{:,.{digits}f}}"
    return (
        f"{f.format(s['median'])}{unit} (min {f.format(s['min'])}, max {f.format(s['max'])}, "
        f"{len(s['runs'])} runs)"
    )
