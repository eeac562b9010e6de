"""Fault sets: validation, seeded determinism, the token-bucket rate limit, bad rows."""

from __future__ import annotations

import json

import pytest

from meetings_simulator.errors import BadParameter
from meetings_simulator.faults import FaultInjector, FaultSet


def test_empty_body_is_no_faults() -> None:
    assert FaultSet.from_json({}) == FaultSet()


def test_full_body() -> None:
    faults = FaultSet.from_json(
        {
            "error_rate": 0.5,
            "error_status": 500,
            "latency_ms": 20,
            "rate_limit_per_second": 3,
            "malformed_rate": 0.1,
            "truncated_rate": 0.2,
            "truncate_mode": "connection",
            "bad_row_rate": 0.01,
            "seed": 4,
        }
    )
    assert faults == FaultSet(0.5, 500, 20, 3.0, 0.1, 0.2, "connection", 0.01)


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"error_rate": 2}, "error_rate"),
        ({"error_rate": "x"}, "error_rate"),
        ({"error_status": 200}, "error_status"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"rate_limit_per_second": 0}, "rate_limit_per_second"),
        ({"truncate_mode": "half"}, "truncate_mode"),
        ({"bad_row_rate": True}, "bad_row_rate"),
        ({"explode": 1}, "explode"),
    ],
)
def test_invalid_fault_sets(body: dict[str, object], parameter: str) -> None:
    with pytest.raises(BadParameter) as info:
        FaultSet.from_json(body)
    assert info.value.parameter == parameter


def test_rolls_are_deterministic_per_seed() -> None:
    def draws(seed: int) -> list[bool]:
        injector = FaultInjector(seed)
        return [injector.roll(0.3, "error") for _ in range(200)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)
    assert 30 < sum(draws(1)) < 90


def test_rate_limit_token_bucket() -> None:
    now = [100.0]
    injector = FaultInjector(0, monotonic=lambda: now[0])
    injector.replace(FaultSet(rate_limit_per_second=2))
    assert [injector.admit() for _ in range(3)] == [None, None, 1]
    now[0] += 0.5  # one token back
    assert injector.admit() is None
    assert injector.admit() == 1
    assert injector.injected["rate_limited"] == 2


def test_slow_rate_limit_asks_to_wait_longer() -> None:
    now = [0.0]
    injector = FaultInjector(0, monotonic=lambda: now[0])
    injector.replace(FaultSet(rate_limit_per_second=0.25))
    assert injector.admit() is None  # burst of one
    assert injector.admit() == 4


def test_bad_rows_are_each_broken_in_one_way() -> None:
    injector = FaultInjector(3)
    injector.replace(FaultSet(bad_row_rate=1.0))
    row = json.dumps({"meeting_id": 1, "account_id": 2, "start_time": "2025-01-01 10:00:00"})
    broken = [json.loads(r) for r in injector.maybe_corrupt_rows([row] * 200)]
    kinds = set()
    for r in broken:
        if r.get("account_id") == "x":
            kinds.add("account")
        elif "start_time" not in r:
            kinds.add("missing")
        elif r["meeting_id"] is None:
            kinds.add("null")
        else:
            assert r["start_time"] == "31/02/2024 25:61"
            kinds.add("date")
    assert kinds == {"account", "missing", "null", "date"}
