# syntax=docker/dockerfile:1
# meetings-cdc container image.
#   docker build -t meetings-cdc:local .
#     (optional: --build-arg REVISION=$(git rev-parse HEAD) CREATED=... SOURCE=<repo URL>)
#   docker run --rm meetings-cdc:local --help
#   docker build --build-arg WITH_SIMULATOR=true -t meetings-cdc:demo .   (docker-compose.yml)
#     also installs the API simulator (simulator/, `meetings-cdc simulate`), a test and demo
#     tool that the default image leaves out.
# The builder stage installs the package and its dependencies (all published as wheels) into a
# virtualenv; the final stage copies only that virtualenv onto a slim Python: no compilers, no
# pip cache, no sources. The entrypoint is exec-form, so `meetings-cdc` is PID 1 and receives
# SIGTERM directly: it finishes or aborts the open Kafka transaction within
# MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS and exits 0.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG WITH_SIMULATOR=false
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY connector ./connector
# connector/schemas is a symlink to ../schemas: the wheel packages the .avsc files from it.
COPY schemas ./schemas
COPY simulator ./simulator
# A wheel of the project, then the wheel installed with its dependencies into the venv; the
# simulator's wheel too with WITH_SIMULATOR=true.
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && /opt/venv/bin/pip install --no-cache-dir /dist/*.whl \
    && if [ "$WITH_SIMULATOR" = true ]; then \
         /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist-simulator ./simulator \
         && /opt/venv/bin/pip install --no-cache-dir /dist-simulator/*.whl; \
       fi

FROM ${PYTHON_IMAGE}
ARG VERSION=0.2.0.dev0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="meetings-cdc" \
      org.opencontainers.image.description="Change-data-capture connector: ExpoPlatform meetings export API to Avro change events in Kafka, exactly once." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed numeric UID/GID, so that Kubernetes' runAsNonRoot can verify it without a passwd file.
RUN groupadd --system --gid 10001 cdc \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cdc
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001
EXPOSE 9400
# Liveness of the main loop; the simulator (the WITH_SIMULATOR=true build) overrides this in
# docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=4 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MEETINGS_CDC_METRICS_PORT', '9400') + '/healthz', timeout=4)"]
ENTRYPOINT ["meetings-cdc"]
CMD ["run"]
