"""Injected faults of the export endpoint: errors, latency, rate limits, bad bodies, bad rows.

The fault set is replaced as a whole (``PUT /admin/faults``; ``{}`` clears it). Every random
choice comes from one seeded RNG, so a test with a fixed seed sees the same faults each run.
Faults apply to ``GET /api/v2/meetings/export`` only; the admin API is always reliable.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from meetings_simulator.errors import BadParameter

TruncateMode = Literal["json", "connection"]
BAD_ROW_KINDS = ("account_id_not_integer", "missing_start_time", "meeting_id_null", "bad_date")
MALFORMED_BODY = b"<html><body><h1>502 Bad Gateway</h1>upstream hiccup</body></html>"


@dataclass(frozen=True, slots=True)
class FaultSet:
    """What goes wrong, and how often (rates are probabilities per response or row)."""

    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: int = 0
    rate_limit_per_second: float | None = None
    malformed_rate: float = 0.0
    truncated_rate: float = 0.0
    truncate_mode: TruncateMode = "json"
    bad_row_rate: float = 0.0

    @classmethod
    def from_json(cls, body: object) -> FaultSet:
        """Validate a ``PUT /admin/faults`` body (``seed`` aside); unknown keys are errors."""
        if not isinstance(body, Mapping):
            raise BadParameter("body", "must be a JSON object")
        known = {f.name for f in fields(cls)} | {"seed"}
        for key in body:
            if key not in known:
                raise BadParameter(key, "unknown fault")
        values: dict[str, Any] = {}
        for name in ("error_rate", "malformed_rate", "truncated_rate", "bad_row_rate"):
            if name in body:
                values[name] = _rate(body[name], name)
        if "error_status" in body:
            status = body["error_status"]
            if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
                raise BadParameter("error_status", "must be an integer HTTP status 400-599")
            values["error_status"] = status
        if "latency_ms" in body:
            latency = body["latency_ms"]
            if not _is_number(latency) or latency < 0:
                raise BadParameter("latency_ms", "must be a number >= 0")
            values["latency_ms"] = int(latency)
        if body.get("rate_limit_per_second") is not None:
            limit = body["rate_limit_per_second"]
            if not _is_number(limit) or limit <= 0:
                raise BadParameter("rate_limit_per_second", "must be a number > 0 or null")
            values["rate_limit_per_second"] = float(limit)
        if "truncate_mode" in body:
            if body["truncate_mode"] not in ("json", "connection"):
                raise BadParameter("truncate_mode", "must be 'json' or 'connection'")
            values["truncate_mode"] = body["truncate_mode"]
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The fault set as JSON."""
        return asdict(self)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rate(value: object, name: str) -> float:
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:  # type: ignore[arg-type]
        raise BadParameter(name, "must be a number between 0 and 1")
    return float(value)  # type: ignore[arg-type]


class FaultInjector:
    """Draws faults from the current :class:`FaultSet` with a seeded RNG; counts them."""

    def __init__(self, seed: int = 0, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.faults = FaultSet()
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not crypto
        self._monotonic = monotonic
        self._tokens = 0.0
        self._refilled_at = monotonic()

    def replace(self, faults: FaultSet, *, seed: int | None = None) -> None:
        """Install a new fault set (resets the rate limiter; reseeds when ``seed`` given)."""
        self.faults = faults
        if seed is not None:
            self._rng.seed(seed)
        rate = faults.rate_limit_per_second
        self._tokens = 0.0 if rate is None else max(rate, 1.0)  # start with a full bucket
        self._refilled_at = self._monotonic()

    def roll(self, rate: float, kind: str) -> bool:
        """True with probability ``rate`` (and count it under ``kind``)."""
        if rate <= 0.0:
            return False
        hit = self._rng.random() < rate
        if hit:
            self.injected[kind] += 1
        return hit

    def admit(self) -> int | None:
        """Token-bucket rate limit: None if the request may proceed, else Retry-After seconds."""
        rate = self.faults.rate_limit_per_second
        if rate is None:
            return None
        now = self._monotonic()
        self._tokens = min(max(rate, 1.0), self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        self.injected["rate_limited"] += 1
        return max(1, math.ceil((1.0 - self._tokens) / rate))

    def truncate_at(self, length: int) -> int:
        """Where to cut a body of ``length`` bytes: somewhere strictly inside it."""
        return self._rng.randrange(1, length) if length > 1 else 0

    def maybe_corrupt_rows(self, rows: list[str]) -> list[str]:
        """Corrupt each row with probability ``bad_row_rate`` (one corruption per bad row)."""
        rate = self.faults.bad_row_rate
        if rate <= 0.0:
            return rows
        return [self._corrupt(row) if self.roll(rate, "bad_row") else row for row in rows]

    def _corrupt(self, row_json: str) -> str:
        row = json.loads(row_json)
        kind = self._rng.choice(BAD_ROW_KINDS)
        if kind == "account_id_not_integer":
            row["account_id"] = "x"
        elif kind == "missing_start_time":
            del row["start_time"]
        elif kind == "meeting_id_null":
            row["meeting_id"] = None
        else:
            row["start_time"] = "31/02/2024 25:61"
        return json.dumps(row, ensure_ascii=False, separators=(",", ":"))
