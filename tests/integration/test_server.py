"""The HTTP endpoints over a real socket (port 0), with an injected registry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from connector.errors import ConfigError
from connector.ops.health import COMPONENTS, HealthState
from connector.ops.metrics import Metrics
from connector.ops.server import bound_port, start_server


class FakeClock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
def health(clock: FakeClock) -> HealthState:
    return HealthState([7], poll_interval_seconds=1, clock=clock, info={"version": "x"})


@pytest.fixture
async def base_url(metrics: Metrics, health: HealthState) -> AsyncIterator[str]:
    runner = await start_server("127.0.0.1", 0, metrics, health)
    try:
        port = bound_port(runner)
        assert port > 0
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_metrics_serves_the_injected_registry_only(
    base_url: str, http: aiohttp.ClientSession, metrics: Metrics
) -> None:
    # A metric on the process-global registry must not leak into /metrics.
    from prometheus_client import REGISTRY

    stray = Counter("meetings_cdc_test_global_stray_total", "not ours", registry=REGISTRY)
    try:
        metrics.prime([7], poll_interval_seconds=1, now=5_000)
        metrics.events_published.labels(event_id="7", change_type="CREATED").inc(3)
        async with http.get(f"{base_url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
    finally:
        REGISTRY.unregister(stray)
    assert "meetings_cdc_test_global_stray" not in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    published = families["meetings_cdc_events_published"]
    values = {
        s.labels["change_type"]: s.value for s in published.samples if s.name.endswith("_total")
    }
    assert values["CREATED"] == 3
    assert values["DELETED"] == 0
    assert "meetings_cdc_build_info" in families


async def test_metrics_speaks_openmetrics_when_asked(
    base_url: str, http: aiohttp.ClientSession
) -> None:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with http.get(f"{base_url}/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await response.text()).rstrip().endswith("# EOF")


async def test_healthz_follows_the_heartbeat(
    base_url: str, http: aiohttp.ClientSession, health: HealthState, clock: FakeClock
) -> None:
    async with http.get(f"{base_url}/healthz") as response:
        assert response.status == 200
        assert (await response.json())["live"] is True
    clock.now += 31
    async with http.get(f"{base_url}/healthz") as response:
        assert response.status == 503
        body = await response.json()
        assert body == {"live": False, "heartbeat_age_seconds": 31.0}
    health.beat()
    async with http.get(f"{base_url}/healthz") as response:
        assert response.status == 200


async def test_readyz_gives_reasons(
    base_url: str, http: aiohttp.ClientSession, health: HealthState
) -> None:
    async with http.get(f"{base_url}/readyz") as response:
        assert response.status == 503
        assert response.content_type == "application/json"
        body = await response.json()
        assert body["ready"] is False
        assert "state not ready" in body["reasons"]
    for component in COMPONENTS:
        health.set_ready(component, True)
    health.cycle_finished(7, phase="snapshot", ok=True, detail={})
    async with http.get(f"{base_url}/readyz") as response:
        assert response.status == 200
        assert (await response.json())["reasons"] == []


async def test_status_is_json_per_event(
    base_url: str, http: aiohttp.ClientSession, health: HealthState
) -> None:
    health.cycle_finished(
        7, phase="incremental", ok=True, detail={"source_lag_seconds": 2, "events": 4}
    )
    async with http.get(f"{base_url}/status") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
    assert body["version"] == "x"
    assert body["events"]["7"]["last_cycle"]["detail"] == {"source_lag_seconds": 2, "events": 4}


async def test_index_and_unknown_paths(base_url: str, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{base_url}/") as response:
        assert response.status == 200
        assert set((await response.json())["endpoints"]) == {
            "/metrics",
            "/healthz",
            "/readyz",
            "/status",
        }
    async with http.get(f"{base_url}/nope") as response:
        assert response.status == 404


async def test_a_busy_port_fails_cleanly(
    base_url: str, metrics: Metrics, health: HealthState
) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match=f"MEETINGS_CDC_METRICS_PORT={port} "):
        await start_server("127.0.0.1", port, metrics, health)


def test_bound_port_needs_a_started_runner(metrics: Metrics, health: HealthState) -> None:
    from connector.ops.server import build_app

    runner = web.AppRunner(build_app(metrics, health))
    with pytest.raises(RuntimeError, match="not listening"):
        bound_port(runner)
