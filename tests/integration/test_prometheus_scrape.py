"""A real Prometheus scrapes a real connector fed by the simulator with churn.

Debian's ``prometheus`` (``.ci/install-system-packages``) runs on loopback with a 1 s scrape
and rule-evaluation interval and the alert rules of deploy/monitoring. ``meetings-cdc run``
runs as a subprocess against the simulator (seeded meetings plus churn) and the test broker.
Through Prometheus' HTTP API the test checks that the key series exist and move, and that
every dashboard panel query and every alert expression evaluates without error. Every wait
is bounded; the test FAILS (never skips) when prometheus is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry

from connector.ops.health import HealthState
from connector.ops.labels import StatusClass
from connector.ops.metrics import Metrics
from connector.ops.server import bound_port, start_server

from ._monitoring import ALERTS, alert_rules, need_binary, panel_queries, substitute

JOB = "meetings-cdc"
EVENTS = (1, 2)
POLL_INTERVAL = 1
STARTUP_TIMEOUT = 90.0  # connector: state topic set-up, restore, snapshot of the seed
MOVE_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(
    what: str,
    check: Callable[[], Awaitable[bool]],
    limit_seconds: float,
    diagnostics: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``check`` every 0.5 s until it holds; fail naming ``what`` after the limit."""
    deadline = time.monotonic() + limit_seconds
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            if await check():
                return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit_seconds:.0f}s waiting for {what}\n{diagnostics()}")
        await asyncio.sleep(0.5)


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(20):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name}: no output)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- last lines of {path.name} ---\n" + "\n".join(text)


class PromAPI:
    """The few calls of Prometheus' HTTP API the test needs."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with self.session.get(
            f"{self.base_url}{path}", params=params, timeout=timeout
        ) as response:
            body: dict[str, Any] = await response.json()
            return body

    async def query(self, expr: str) -> dict[str, Any]:
        """Evaluate ``expr`` now; the whole answer (status, data or error)."""
        return await self.get("/api/v1/query", query=expr)

    async def vector(self, expr: str) -> list[dict[str, Any]]:
        """The samples of an instant vector ``expr``; fails on a query error."""
        body = await self.query(expr)
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def scalar(self, expr: str) -> float | None:
        """The value of a one-sample ``expr``, ``None`` when it has no sample."""
        samples = await self.vector(expr)
        return float(samples[0]["value"][1]) if samples else None


@pytest.fixture
async def prometheus_factory(
    tmp_path: Path,
) -> AsyncIterator[Callable[[int], Awaitable[PromAPI]]]:
    """Start Debian's prometheus scraping ``127.0.0.1:<port>`` every second."""
    binary = need_binary("prometheus")
    processes: list[asyncio.subprocess.Process] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(target_port: int) -> PromAPI:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        log_path = tmp_path / "prometheus.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
        processes.append(process)
        session = aiohttp.ClientSession()
        sessions.append(session)
        api = PromAPI(session, f"http://127.0.0.1:{port}")

        async def is_ready() -> bool:
            if process.returncode is not None:
                pytest.fail(f"prometheus exited with {process.returncode}\n{tail(log_path)}")
            async with session.get(f"{api.base_url}/-/ready") as response:
                return response.status == 200

        await wait_for("prometheus to be ready", is_ready, 30, lambda: tail(log_path))
        return api

    yield start
    for session in sessions:
        await session.close()
    for process in processes:
        await stop_process(process)


@pytest.fixture
async def connector_factory(
    tmp_path: Path, kafka_bootstrap: str, unique_name: Callable[[str], str], admin: Any
) -> AsyncIterator[Callable[[str], Awaitable[tuple[int, Path]]]]:
    """Start ``meetings-cdc run`` against ``api_base_url``; returns (metrics port, log path)."""
    processes: list[asyncio.subprocess.Process] = []
    topics: list[str] = []

    async def start(api_base_url: str) -> tuple[int, Path]:
        port = free_port()
        changes, state, dlq = (unique_name(p) for p in ("changes", "state", "dlq"))
        topics.extend([changes, state, dlq])
        env = {
            **os.environ,
            "MEETINGS_CDC_API_BASE_URL": api_base_url,
            "MEETINGS_CDC_API_KEY": "scrape-test-key",
            "MEETINGS_CDC_EVENT_IDS": ",".join(str(e) for e in EVENTS),
            "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "MEETINGS_CDC_CHANGES_TOPIC": changes,
            "MEETINGS_CDC_STATE_TOPIC": state,
            "MEETINGS_CDC_DLQ_TOPIC": dlq,
            "MEETINGS_CDC_CHANGES_TOPIC_PARTITIONS": "2",
            "MEETINGS_CDC_STATE_TOPIC_PARTITIONS": "2",
            "MEETINGS_CDC_POLL_INTERVAL_SECONDS": str(POLL_INTERVAL),
            "MEETINGS_CDC_METRICS_HOST": "127.0.0.1",
            "MEETINGS_CDC_METRICS_PORT": str(port),
            "MEETINGS_CDC_CONNECTOR_NAME": unique_name("scrape"),
            "MEETINGS_CDC_LOG_LEVEL": "INFO",
        }
        log_path = tmp_path / "connector.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "connector",
                "run",
                env=env,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
        processes.append(process)

        async def is_live() -> bool:
            if process.returncode is not None:
                pytest.fail(f"meetings-cdc run exited with {process.returncode}\n{tail(log_path)}")
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                return response.status == 200

        await wait_for("the connector's /healthz", is_live, STARTUP_TIMEOUT, lambda: tail(log_path))
        return port, log_path

    yield start
    for process in processes:
        await stop_process(process)
    if topics:
        for future in admin.delete_topics(topics).values():
            with contextlib.suppress(Exception):  # best-effort clean-up; absent topics too
                future.result(timeout=30)


def sel(**labels: str) -> str:
    """A label selector of the test's job plus ``labels``."""
    pairs = {"job": JOB, **labels}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


async def wait_until_moving(
    prom: PromAPI, moving: dict[str, str], diagnostics: Callable[[], str]
) -> None:
    """Each expression of ``moving`` has a value, and it grows."""
    first = {name: await prom.scalar(expr) for name, expr in moving.items()}
    for name, expr in moving.items():
        start = first[name]
        assert start is not None, f"{name}: no series ({expr})\n{diagnostics()}"

        async def moved(expr: str = expr, start: float = start) -> bool:
            now = await prom.scalar(expr)
            return now is not None and now > start

        await wait_for(f"{name} to grow past {start}", moved, MOVE_TIMEOUT, diagnostics)


async def assert_every_query_evaluates(prom: PromAPI) -> None:
    """Every dashboard panel query and alert expression evaluates without error; the
    loaded rules are healthy; a healthy connector is neither down, stalled nor fenced."""
    failures = []
    for title, raw in panel_queries():
        expr = substitute(raw, job=JOB, rate_interval="10s")
        body = await prom.query(expr)
        if body.get("status") != "success":
            failures.append(f"{title}: {expr}: {body.get('error')}")
    assert not failures, "dashboard queries failed:\n" + "\n".join(failures)
    for expr in (  # the overview row answers with data
        f"sum(up{sel()})",
        f"sum(rate(meetings_cdc_events_published_total{sel()}[10s]))",
        f"max(meetings_cdc_source_lag_seconds{sel()})",
        f"max(time() - meetings_cdc_last_successful_cycle_timestamp_seconds{sel()})",
        f"sum(meetings_cdc_tracked_meetings{sel()})",
        f"count by (version) (meetings_cdc_build_info{sel()})",
    ):
        assert await prom.vector(expr), f"overview query without data: {expr}"

    failures = []
    for rule in alert_rules():
        body = await prom.query(str(rule["expr"]))
        if body.get("status") != "success":
            failures.append(f"{rule['alert']}: {body.get('error')}")
    assert not failures, "alert expressions failed:\n" + "\n".join(failures)

    async def rules_evaluated() -> bool:
        groups = (await prom.get("/api/v1/rules"))["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return len(rules) == len(alert_rules()) and all(
            r.get("lastEvaluation", "").startswith("20") for r in rules
        )

    await wait_for("the alert rules to be evaluated", rules_evaluated, 15)
    groups = (await prom.get("/api/v1/rules"))["data"]["groups"]
    unhealthy = [
        f"{r['name']}: {r.get('lastError')}"
        for g in groups
        for r in g["rules"]
        if r["health"] != "ok"
    ]
    assert not unhealthy, unhealthy

    for name in ("MeetingsCdcDown", "MeetingsCdcStalled", "MeetingsCdcProducerFenced"):
        [rule] = [r for r in alert_rules() if r["alert"] == name]
        assert await prom.vector(str(rule["expr"])) == [], f"{name} matches a healthy connector"


# --- the real connector ------------------------------------------------------------------


async def test_prometheus_scrapes_the_connector_and_every_query_evaluates(
    simulator_process: Any,
    connector_factory: Callable[[str], Awaitable[tuple[int, Path]]],
    prometheus_factory: Callable[[int], Awaitable[PromAPI]],
) -> None:
    event_args = [arg for e in EVENTS for arg in ("--event-id", str(e))]
    simulator = await simulator_process(
        *event_args, "--meetings", "200", "--seed", "6", "--churn-per-second", "5"
    )
    connector_port, connector_log = await connector_factory(simulator.base_url)
    prom = await prometheus_factory(connector_port)

    def diagnostics() -> str:
        return tail(connector_log)

    async def target_up() -> bool:
        return await prom.scalar(f"up{sel()}") == 1.0

    await wait_for("the connector's target to be up", target_up, 30, diagnostics)

    async def every_event_cycled() -> bool:
        samples = await prom.vector(
            f"sum by (event_id) (meetings_cdc_cycles_total{sel(outcome='ok')}) > 0"
        )
        return {s["metric"]["event_id"] for s in samples} == {str(e) for e in EVENTS}

    await wait_for("successful cycles of every event", every_event_cycled, STARTUP_TIMEOUT)

    # The key series exist ...
    for expr in (
        f"meetings_cdc_build_info{sel()}",
        f"meetings_cdc_poll_interval_seconds{sel()} == {POLL_INTERVAL}",
        f"meetings_cdc_source_lag_seconds{sel()}",
        f"meetings_cdc_tracked_meetings{sel()} > 0",
        f"meetings_cdc_state_restore_duration_seconds{sel()}",
        f"meetings_cdc_api_requests_total{sel(status_class='2xx')} > 0",
        f"meetings_cdc_api_request_duration_seconds_count{sel()} > 0",
        f"meetings_cdc_pages_fetched_total{sel()} > 0",
        f"meetings_cdc_bytes_fetched_total{sel()} > 0",
        f"meetings_cdc_cycle_duration_seconds_count{sel()} > 0",
        f"meetings_cdc_transactions_total{sel(outcome='committed')} > 0",
        f"meetings_cdc_events_published_total{sel()}",
        f"process_resident_memory_bytes{sel()} > 0",
    ):
        assert await prom.vector(expr), f"no series for {expr}\n{diagnostics()}"
    for event_id in EVENTS:
        series = (
            f"meetings_cdc_last_successful_cycle_timestamp_seconds{sel(event_id=str(event_id))}"
        )
        assert await prom.vector(series), f"no last-success timestamp for event {event_id}"

    # ... and move: churn keeps changing meetings, so events, rows and cycles keep growing.
    await wait_until_moving(
        prom,
        {
            "events published": f"sum(meetings_cdc_events_published_total{sel()})",
            "rows fetched": f"sum(meetings_cdc_rows_fetched_total{sel()})",
            "successful cycles": f"sum(meetings_cdc_cycles_total{sel(outcome='ok')})",
            "committed transactions": (
                f"sum(meetings_cdc_transactions_total{sel(outcome='committed')})"
            ),
            "last successful cycle": (
                f"max(meetings_cdc_last_successful_cycle_timestamp_seconds{sel()})"
            ),
        },
        diagnostics,
    )
    latency = f"meetings_cdc_end_to_end_latency_seconds_count{sel()} > 0"
    assert await prom.vector(latency), f"no end-to-end latency observed\n{diagnostics()}"

    await assert_every_query_evaluates(prom)


# --- the metrics server alone, driven by a synthetic workload ----------------------------


async def drive(metrics: Metrics, health: HealthState, stop: asyncio.Event) -> None:
    """What the engine reports, every 0.2 s, for every event."""
    n = 0
    while not stop.is_set():
        n += 1
        now = time.time()
        health.beat()
        for event_id in EVENTS:
            e = str(event_id)
            kind = "created" if n % 2 else "modified"
            metrics.api_requests.labels(e, StatusClass.of(200)).inc()
            metrics.api_request_duration.labels(e).observe(0.01 * (n % 7))
            metrics.rows_fetched.labels(e, kind).inc(10)
            metrics.pages_fetched.labels(e, kind).inc()
            metrics.bytes_fetched.labels(e).inc(4096)
            metrics.events_published.labels(e, "RESCHEDULED").inc(2)
            metrics.end_to_end_latency.labels(e).observe(1.5)
            metrics.transactions.labels(e, "committed").inc()
            metrics.cycles.labels(e, "incremental", "ok").inc()
            metrics.cycle_duration.labels(e, "incremental").observe(0.05)
            metrics.last_success.labels(e).set(now)
            metrics.source_lag.labels(e).set(2.0)
            metrics.watermark.labels(e, kind).set(now - 3)
            metrics.tracked_meetings.labels(e).set(100 + n)
            health.cycle_finished(event_id, phase="incremental", ok=True, detail={"n": n})
        await asyncio.sleep(0.2)


async def test_prometheus_scrapes_the_metrics_server(
    prometheus_factory: Callable[[int], Awaitable[PromAPI]],
) -> None:
    """The same queries against the server fed by a synthetic engine (no Kafka, no API)."""
    metrics = Metrics(CollectorRegistry())
    metrics.prime(EVENTS, poll_interval_seconds=POLL_INTERVAL, now=time.time())
    metrics.state_restore_duration.set(0.5)
    metrics.state_restore_records.set(1000)
    metrics.api_clock_offset.set(0.0)
    health = HealthState(EVENTS, poll_interval_seconds=POLL_INTERVAL)
    for component in ("state", "producer"):
        health.set_ready(component, True)
    runner = await start_server("127.0.0.1", 0, metrics, health)
    stop = asyncio.Event()
    driver = asyncio.create_task(drive(metrics, health, stop))
    try:
        prom = await prometheus_factory(bound_port(runner))

        async def target_up() -> bool:
            return await prom.scalar(f"up{sel()}") == 1.0

        await wait_for("the target to be up", target_up, 30)
        await wait_until_moving(
            prom,
            {
                "events published": f"sum(meetings_cdc_events_published_total{sel()})",
                "rows fetched": f"sum(meetings_cdc_rows_fetched_total{sel()})",
                "successful cycles": f"sum(meetings_cdc_cycles_total{sel(outcome='ok')})",
            },
            lambda: "",
        )
        # Enough samples for rate() over the dashboard's 10 s windows.
        await asyncio.sleep(3)
        await assert_every_query_evaluates(prom)
    finally:
        stop.set()
        await driver
        await runner.cleanup()
