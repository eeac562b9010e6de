"""The connector's HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz``, ``/status``.

- ``/metrics``: Prometheus text (or OpenMetrics, by ``Accept``) of the injected registry only.
- ``/healthz``: liveness, 200 or 503 from the main loop's heartbeat. It never checks Kafka or
  the API, so an outage of either cannot set off a restart storm.
- ``/readyz``: readiness, 200 or 503 with a JSON body giving the reasons.
- ``/status``: JSON of every event's watermarks, lag, last cycle and counts.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from connector.errors import ConfigError
from connector.ops.health import HealthState
from connector.ops.metrics import Metrics

METRICS_KEY = web.AppKey("metrics", Metrics)
HEALTH_KEY = web.AppKey("health", HealthState)

ENDPOINTS = {
    "/metrics": "Prometheus metrics",
    "/healthz": "liveness: 200 while the main loop's heartbeat is fresh",
    "/readyz": "readiness: 200 when state, producer and every event's last cycle are fine",
    "/status": "JSON status of every event",
}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(
        body,
        status=status,
        dumps=lambda obj: json.dumps(obj, sort_keys=True, allow_nan=False),
        headers={"Cache-Control": "no-store"},
    )


async def _metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS_KEY]
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    # The encoder's default argument is the process-global registry: always pass ours.
    body = encoder(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _healthz(request: web.Request) -> web.Response:
    health = request.app[HEALTH_KEY]
    live = health.live()
    return _json(
        {"live": live, "heartbeat_age_seconds": round(health.heartbeat_age(), 3)},
        status=200 if live else 503,
    )


async def _readyz(request: web.Request) -> web.Response:
    ready, body = request.app[HEALTH_KEY].ready()
    return _json(body, status=200 if ready else 503)


async def _status(request: web.Request) -> web.Response:
    return _json(request.app[HEALTH_KEY].status())


async def _index(request: web.Request) -> web.Response:
    return _json({"endpoints": ENDPOINTS})


def build_app(metrics: Metrics, health: HealthState) -> web.Application:
    """The aiohttp application, for tests that drive it without a socket."""
    app = web.Application()
    app[METRICS_KEY] = metrics
    app[HEALTH_KEY] = health
    app.router.add_get("/", _index)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/status", _status)
    return app


async def start_server(
    host: str, port: int, metrics: Metrics, health: HealthState
) -> web.AppRunner:
    """Serve the endpoints on ``host:port`` (0 = any free port, see :func:`bound_port`).

    Stop it with ``await runner.cleanup()``.
    """
    runner = web.AppRunner(build_app(metrics, health), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        # One line naming the setting, not a traceback: it is a configuration mistake
        # (another process, often a second connector, holds the port).
        raise ConfigError(
            f"configuration error: MEETINGS_CDC_METRICS_PORT={port} "
            f"(MEETINGS_CDC_METRICS_HOST={host}): cannot listen: {exc.strerror or exc}"
        ) from None
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port a started runner listens on (the real one when started on port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the server is not listening on a TCP port")
