"""What an operator reads: metrics, health, the HTTP server, logs.

- ``labels``: every bounded label value of the metrics as a ``StrEnum`` (pure);
- ``metrics``: every metric, on an injected registry; ``prime()``;
- ``health``: liveness, readiness and ``/status`` (pure, clock injected);
- ``server``: aiohttp ``/metrics``, ``/healthz``, ``/readyz``, ``/status``;
- ``logs``: JSON log lines with secret redaction;
- ``librdkafka_logs``: librdkafka's log lines through our logger, deduplicated.
"""
