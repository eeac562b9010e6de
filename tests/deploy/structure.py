"""Checks of our own where no schema reaches: how the pieces fit together.

Each function returns a list of problems (empty = fine), so a test asserts ``== []`` on the
real artefacts and asserts a specific problem on a broken copy.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import REPO, pod_spec

DEFAULT_SHUTDOWN_TIMEOUT = 20.0
GRACE_MARGIN_SECONDS = 5
MIN_STARTUP_BUDGET_SECONDS = 300  # state restore of a large event
METRICS_PORT = 9400
COMPOSE_SERVICES = {"kafka", "schema-registry", "simulator", "connector", "prometheus", "grafana"}


INSTANCE_LABEL = "app.kubernetes.io/instance"
# The job regex every alert rule selects on (deploy/monitoring/prometheus/alerts.yml).
ALERT_JOB_REGEX = re.search(
    r'up\{job=~"([^"]+)"\}',
    (REPO / "deploy" / "monitoring" / "prometheus" / "alerts.yml").read_text(encoding="utf-8"),
).group(1)  # type: ignore[union-attr]


def scrape_jobs(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The job label the Prometheus operator gives the targets of each ServiceMonitor: the
    value of the Service label its ``jobLabel`` names, else the Service's name."""
    jobs: dict[str, set[str]] = {}
    for monitor in _by_kind(docs, "ServiceMonitor"):
        selector = monitor["spec"]["selector"].get("matchLabels") or {}
        job_label = monitor["spec"].get("jobLabel")
        found = jobs.setdefault(monitor["metadata"]["name"], set())
        for service in _by_kind(docs, "Service"):
            labels = service["metadata"].get("labels") or {}
            if _matches(selector, labels):
                found.add(labels.get(job_label) or service["metadata"]["name"])
    return jobs


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def config_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """Literal settings a container gets: envFrom ConfigMaps, then ``env`` values."""
    maps = {d["metadata"]["name"]: d.get("data") or {} for d in _by_kind(docs, "ConfigMap")}
    secrets = {d["metadata"]["name"]: d for d in _by_kind(docs, "Secret")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps.get(source["configMapRef"]["name"], {}))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["name"] in secrets:
            secret = secrets[ref["name"]]
            if ref["key"] in (secret.get("stringData") or {}):
                env[item["name"]] = secret["stringData"][ref["key"]]
            elif ref["key"] in (secret.get("data") or {}):
                env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    return env


def connector_workload(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The connector's workload object and its ``connector`` container."""
    workloads = [d for d in docs if pod_spec(d) is not None]
    assert len(workloads) == 1, f"expected one workload, got {[w['kind'] for w in workloads]}"
    spec = pod_spec(workloads[0])
    assert spec is not None
    containers = [c for c in spec["containers"] if c["name"] == "connector"]
    assert containers, "no container named 'connector'"
    return workloads[0], containers[0]


def _replica_problems(
    docs: list[dict[str, Any]],
    workload: dict[str, Any],
    container: dict[str, Any],
    spec: dict[str, Any],
    *,
    static_membership: bool,
) -> list[str]:
    """Two replicas at least, rolling without a gap, spread over nodes, a PDB; static
    membership (``MEETINGS_CDC_INSTANCE_ID`` from the pod name) by default."""
    problems: list[str] = []
    kind = workload["kind"]
    if kind != "Deployment":
        return [f"the connector must be a Deployment, not {kind}"]
    if workload["spec"].get("replicas", 1) < 2:
        problems.append("Deployment must run at least 2 replicas (failover without a reschedule)")
    strategy = workload["spec"].get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    if strategy.get("type") != "RollingUpdate" or (
        str(rolling.get("maxSurge")),
        str(rolling.get("maxUnavailable")),
    ) != ("1", "0"):
        problems.append("strategy must be RollingUpdate with maxSurge 1 and maxUnavailable 0")
    selector = workload["spec"]["selector"]["matchLabels"]
    budgets = [
        d for d in _by_kind(docs, "PodDisruptionBudget")
        if d["spec"].get("selector", {}).get("matchLabels") == selector
    ]  # fmt: skip
    if not budgets:
        problems.append("no PodDisruptionBudget selects the connector's pods")
    spread = [
        c for c in spec.get("topologySpreadConstraints", [])
        if c.get("topologyKey") == "kubernetes.io/hostname"
        and (c.get("labelSelector") or {}).get("matchLabels") == selector
    ]  # fmt: skip
    if not spread:
        problems.append("pods must be spread over nodes (topologySpreadConstraints on hostname)")
    problems += instance_id_problems(container, static_membership=static_membership)
    # a setting in the ConfigMap is one literal id for every replica, with or without the
    # pod-name entry (which would hide it only while that entry is there)
    maps = {d["metadata"]["name"]: d.get("data") or {} for d in _by_kind(docs, "ConfigMap")}
    for source in container.get("envFrom", []):
        name = (source.get("configMapRef") or {}).get("name")
        if "MEETINGS_CDC_INSTANCE_ID" in maps.get(name, {}):
            problems.append(
                f"MEETINGS_CDC_INSTANCE_ID must not be a literal value (ConfigMap {name}): two "
                "replicas with one id fence each other"
            )
    return problems


def instance_id_problems(container: dict[str, Any], *, static_membership: bool) -> list[str]:
    """Static membership by default, from the pod name; the opt-out leaves it out.

    By default (``static_membership=True``) a Deployment must set ``MEETINGS_CDC_INSTANCE_ID``
    from ``metadata.name``: a container restarted in its pod keeps its name and takes its dead
    predecessor's place at once instead of after the session timeout, and a replica stopped
    with SIGTERM still leaves the group, so rollouts lose nothing. Never a literal value (nor
    a ConfigMap or Secret key, nor a second entry): two replicas with one id fence each other.
    The opt-out (``static_membership=False``: components/dynamic-membership, chart
    ``staticMembership: false``) must render without it.
    """
    instance = [e for e in container.get("env", []) if e["name"] == "MEETINGS_CDC_INSTANCE_ID"]
    if not static_membership:
        if instance:
            return [
                "MEETINGS_CDC_INSTANCE_ID must not be set with dynamic membership (the opt-out)"
            ]
        return []
    if not instance:
        return [
            "MEETINGS_CDC_INSTANCE_ID must be set by default (static membership from the pod "
            "name): a container restarted in its pod would wait for the session timeout"
        ]
    if len(instance) > 1:
        return ["MEETINGS_CDC_INSTANCE_ID is set more than once"]
    (entry,) = instance
    if "value" in entry:
        return [
            "MEETINGS_CDC_INSTANCE_ID must not be a literal value: two replicas with one id "
            "fence each other; it must come from the pod name (metadata.name)"
        ]
    field_path = ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
    if field_path != "metadata.name":
        return ["MEETINGS_CDC_INSTANCE_ID must come from the pod name (metadata.name)"]
    return []


def workload_problems(
    docs: list[dict[str, Any]], *, require_secret: bool, static_membership: bool = True
) -> list[str]:
    """The connector's workload, Service, ServiceMonitor, NetworkPolicy and rules fit.

    ``static_membership=False`` checks a render with the opt-out (dynamic membership)."""
    problems: list[str] = []
    workload, container = connector_workload(docs)
    spec = pod_spec(workload)
    assert spec is not None

    # replicas sharing the events (docs/replicas.md)
    problems += _replica_problems(
        docs, workload, container, spec, static_membership=static_membership
    )

    # ports and probes
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if METRICS_PORT not in ports.values():
        problems.append(f"container does not expose the metrics port {METRICS_PORT}")
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe_name, path in expected.items():
        probe = container.get(probe_name)
        get = (probe or {}).get("httpGet") or {}
        port = ports.get(get.get("port"), get.get("port"))
        if get.get("path") != path or port != METRICS_PORT:
            problems.append(f"{probe_name} must GET {path} on port {METRICS_PORT}")
    startup = container.get("startupProbe") or {}
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    if budget < MIN_STARTUP_BUDGET_SECONDS:
        problems.append(f"startupProbe allows {budget}s; state restore needs >= 300s")

    # shutdown
    env = config_env(docs, container)
    timeout = float(env.get("MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS", DEFAULT_SHUTDOWN_TIMEOUT))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace < timeout + GRACE_MARGIN_SECONDS:
        problems.append(
            f"terminationGracePeriodSeconds {grace} must exceed the shutdown timeout {timeout}s "
            f"by {GRACE_MARGIN_SECONDS}s"
        )

    # resources, filesystem
    resources = container.get("resources") or {}
    for section, key in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
        if key not in (resources.get(section) or {}):
            problems.append(f"resources.{section}.{key} is not set")
    if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        problems.append("readOnlyRootFilesystem must be true")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
        problems.append("/tmp must be an emptyDir mount (read-only root filesystem)")
    for name in mounts.values():
        if name not in volumes:
            problems.append(f"volumeMount {name} has no volume")

    # references to ConfigMaps and Secrets
    config_maps = {d["metadata"]["name"] for d in _by_kind(docs, "ConfigMap")}
    secrets = {d["metadata"]["name"] for d in _by_kind(docs, "Secret")}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref and ref["name"] not in config_maps:
            problems.append(f"envFrom ConfigMap {ref['name']} does not exist")
    for volume in volumes.values():
        if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
            problems.append(f"volume {volume['name']}: ConfigMap missing")
    secret_refs = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in container.get("env", [])
        if "secretKeyRef" in (item.get("valueFrom") or {})
    }
    if {"MEETINGS_CDC_API_KEY"} - {
        i["name"] for i in container.get("env", []) if "secretKeyRef" in (i.get("valueFrom") or {})
    }:
        problems.append("MEETINGS_CDC_API_KEY must come from a Secret")
    if require_secret:
        problems += [f"Secret {name} does not exist" for name in sorted(secret_refs - secrets)]
    secret_settings = {
        "MEETINGS_CDC_API_KEY",
        "MEETINGS_CDC_KAFKA_SASL_PASSWORD",
        "MEETINGS_CDC_SCHEMA_REGISTRY_BASIC_AUTH",
    }
    for config_map in _by_kind(docs, "ConfigMap"):
        for name in sorted(secret_settings & set(config_map.get("data") or {})):
            problems.append(f"{name} must come from a Secret, not a ConfigMap")

    # metrics Service, ServiceMonitor
    pod_labels = workload["spec"]["template"]["metadata"].get("labels") or {}
    services = [
        s
        for s in _by_kind(docs, "Service")
        if _matches(s["spec"].get("selector") or {}, pod_labels)
    ]
    if not services:
        problems.append("no Service selects the connector's pods")
    service_ports = {
        p.get("name")
        for s in services
        for p in s["spec"]["ports"]
        if ports.get(p.get("targetPort"), p.get("targetPort")) == METRICS_PORT
    }
    if not service_ports:
        problems.append("no Service port targets the metrics port")
    monitors = _by_kind(docs, "ServiceMonitor")
    if not monitors:
        problems.append("no ServiceMonitor")
    for monitor in monitors:
        selector = monitor["spec"]["selector"].get("matchLabels") or {}
        chosen = [s for s in services if _matches(selector, s["metadata"].get("labels") or {})]
        if not chosen:
            problems.append(f"ServiceMonitor {monitor['metadata']['name']} selects no Service")
        if selector.get(INSTANCE_LABEL) != pod_labels.get(INSTANCE_LABEL):
            problems.append(
                f"ServiceMonitor {monitor['metadata']['name']} must select on {INSTANCE_LABEL} "
                "(another deployment in the namespace would be scraped too)"
            )
        if not monitor["spec"].get("jobLabel"):
            problems.append(
                f"ServiceMonitor {monitor['metadata']['name']} sets no jobLabel: the job would "
                "be the Service's name, which a name override takes out of the alerts' regex"
            )
        for job in sorted(scrape_jobs(docs).get(monitor["metadata"]["name"], set())):
            if not re.fullmatch(ALERT_JOB_REGEX, job):
                problems.append(f"scrape job {job!r} does not match the alerts' {ALERT_JOB_REGEX}")
        for endpoint in monitor["spec"].get("endpoints", []):
            if endpoint.get("port") not in service_ports:
                problems.append(f"ServiceMonitor endpoint port {endpoint.get('port')} is unknown")
    if not _by_kind(docs, "PrometheusRule"):
        problems.append("no PrometheusRule")

    # NetworkPolicy
    policies = [
        p
        for p in _by_kind(docs, "NetworkPolicy")
        if _matches(p["spec"]["podSelector"].get("matchLabels") or {}, pod_labels)
    ]
    if not policies:
        problems.append("no NetworkPolicy selects the connector's pods")
    for policy in policies:
        if set(policy["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
            problems.append("NetworkPolicy must restrict both Ingress and Egress")
        for rule in policy["spec"].get("ingress", []):
            allowed = {ports.get(p.get("port"), p.get("port")) for p in rule.get("ports", [])}
            if allowed != {METRICS_PORT}:
                problems.append(f"ingress must be the metrics port only, not {allowed or 'all'}")
        dns = [
            p
            for rule in policy["spec"].get("egress", [])
            for p in rule.get("ports", [])
            if p.get("port") == 53 and p.get("protocol", "TCP") == "UDP"
        ]
        if not dns:
            problems.append("egress must allow DNS (UDP 53)")
    return problems


def kafka_security_problems(docs: list[dict[str, Any]]) -> list[str]:
    """SASL_SSL wired: mechanism and user in settings, password from a Secret, CA mounted."""
    problems = []
    workload, container = connector_workload(docs)
    spec = pod_spec(workload)
    assert spec is not None
    env = config_env(docs, container)
    if env.get("MEETINGS_CDC_KAFKA_SECURITY_PROTOCOL") != "SASL_SSL":
        problems.append("MEETINGS_CDC_KAFKA_SECURITY_PROTOCOL must be SASL_SSL")
    for name in ("MEETINGS_CDC_KAFKA_SASL_MECHANISM", "MEETINGS_CDC_KAFKA_SASL_USERNAME"):
        if not env.get(name):
            problems.append(f"{name} is not set")
    password = [
        i for i in container.get("env", []) if i["name"] == "MEETINGS_CDC_KAFKA_SASL_PASSWORD"
    ]
    if not password or "secretKeyRef" not in (password[0].get("valueFrom") or {}):
        problems.append("MEETINGS_CDC_KAFKA_SASL_PASSWORD must come from a Secret")
    ca = env.get("MEETINGS_CDC_KAFKA_SSL_CA_LOCATION", "")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    sources = {
        d["metadata"]["name"]: {**(d.get("data") or {}), **(d.get("stringData") or {})}
        for d in docs
        if d.get("kind") in {"ConfigMap", "Secret"}
    }
    found = False
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not ca.startswith(prefix):
            continue
        volume = volumes.get(mount["name"], {})
        ref = (volume.get("configMap") or {}).get("name") or (volume.get("secret") or {}).get(
            "secretName"
        )
        if ref in sources and ca.removeprefix(prefix) in sources[ref]:
            found = True
    if not found:
        problems.append(f"the CA file {ca!r} is not mounted from a ConfigMap or Secret key")
    return problems


def settings_problems(env: dict[str, str]) -> list[str]:
    """Validate settings the way the container does: only these variables, real loader."""
    code = (
        "from connector.config.settings import Settings, load_settings\n"
        "from connector.errors import ConfigError\n"
        "try:\n    load_settings(Settings)\n"
        "except ConfigError as exc:\n    print(exc)\n    raise SystemExit(1)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return [result.stdout.strip() or result.stderr.strip()]
    return []


# --- docker-compose.yml ----------------------------------------------------------------------


def _seconds(value: str | int | float) -> float:
    if isinstance(value, int | float):
        return float(value)
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def compose_problems(compose: dict[str, Any], root: Path) -> list[str]:
    """The compose stack fits together: services, health gates, mounts, wiring."""
    problems: list[str] = []
    services = compose.get("services") or {}
    missing = COMPOSE_SERVICES - set(services)
    if missing:
        problems.append(f"services missing: {sorted(missing)}")
        return problems

    for name, service in services.items():
        if "healthcheck" not in service:
            problems.append(f"service {name} has no healthcheck")
        for port in service.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"service {name} publishes {port} beyond 127.0.0.1")
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source and source.startswith((".", "/")) and not (root / source).exists():
                problems.append(f"service {name} mounts {source}, which does not exist")
        build = service.get("build")
        if build:
            context = root / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            if not (context / dockerfile).is_file():
                problems.append(f"service {name}: {dockerfile} not found in the build context")

    kafka = services["kafka"]
    if not str(kafka.get("image", "")).startswith("apache/kafka:"):
        problems.append("kafka must use the official apache/kafka image")
    kenv = kafka.get("environment") or {}
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        if str(kenv.get(key)) != "1":
            problems.append(f"single-broker Kafka needs {key}=1 (transactions)")
    cluster_id = str(kenv.get("CLUSTER_ID", ""))
    try:
        cluster_id_ok = len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    except ValueError:
        cluster_id_ok = False
    if len(cluster_id) != 22 or not cluster_id_ok:
        problems.append("Kafka CLUSTER_ID must be 16 bytes in URL-safe base64 (22 characters)")
    volumes = {str(v).split(":")[1] for v in kafka.get("volumes", [])}
    if kenv.get("KAFKA_LOG_DIRS") not in volumes:
        problems.append("KAFKA_LOG_DIRS must be the mounted data volume")
    if "broker,controller" not in str(kenv.get("KAFKA_PROCESS_ROLES", "")):
        problems.append("Kafka must run in KRaft combined mode")

    connector = services["connector"]
    cenv = {k: str(v) for k, v in (connector.get("environment") or {}).items()}
    for dependency in ("kafka", "schema-registry", "simulator"):
        condition = ((connector.get("depends_on") or {}).get(dependency) or {}).get("condition")
        if condition != "service_healthy":
            problems.append(f"connector must wait for {dependency} to be healthy")
    timeout = float(cenv.get("MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS", DEFAULT_SHUTDOWN_TIMEOUT))
    if _seconds(connector.get("stop_grace_period", "10s")) < timeout + GRACE_MARGIN_SECONDS:
        problems.append("connector stop_grace_period must exceed its shutdown timeout")
    if cenv.get("MEETINGS_CDC_API_BASE_URL") != "http://simulator:8080":
        problems.append("connector must read the simulator at http://simulator:8080")
    if "--churn-per-second=0" in " ".join(services["simulator"].get("command", [])) or not any(
        "churn" in str(c) for c in services["simulator"].get("command", [])
    ):
        problems.append("the simulator must run with churn")
    bootstrap = cenv.get("MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS", "")
    if bootstrap not in str(kenv.get("KAFKA_ADVERTISED_LISTENERS", "")):
        problems.append(f"bootstrap {bootstrap!r} is not an advertised Kafka listener")
    registry = cenv.get("MEETINGS_CDC_SCHEMA_REGISTRY_URL", "")
    if not registry.startswith("http://schema-registry:"):
        problems.append("connector must use the schema-registry service")

    mounts = {
        v.split(":")[1]: v.split(":")[0]
        for v in services["prometheus"].get("volumes", [])
        if isinstance(v, str) and v.startswith(".")
    }
    if "./deploy/monitoring/prometheus/alerts.yml" not in mounts.values():
        problems.append("prometheus must load deploy/monitoring/prometheus/alerts.yml")
    config_source = mounts.get("/etc/prometheus/prometheus.yml")
    if config_source and (root / config_source).is_file():
        config = yaml.safe_load((root / config_source).read_text())
        targets = [
            t
            for job in config.get("scrape_configs", [])
            if "meetings-cdc" in job["job_name"]
            for sc in job.get("static_configs", [])
            for t in sc.get("targets", [])
        ]
        if "connector:9400" not in targets:
            problems.append("prometheus must scrape connector:9400 in a job named meetings-cdc")
    else:
        problems.append("prometheus.yml is not mounted")

    grafana_mounts = [v for v in services["grafana"].get("volumes", []) if isinstance(v, str)]
    dashboards = [
        p
        for v in grafana_mounts
        if v.startswith("./deploy/monitoring/grafana")
        for p in (root / v.split(":")[0]).rglob("*.json")
    ]
    if not dashboards:
        problems.append("grafana must provision a dashboard from deploy/monitoring/grafana")
    targets = {v.split(":")[1]: root / v.split(":")[0] for v in grafana_mounts}
    provisioning = targets.get("/etc/grafana/provisioning")
    if provisioning is None:
        problems.append("grafana provisioning is not mounted")
        return problems
    for provider_file in sorted(provisioning.glob("dashboards/*.y*ml")):
        for provider in yaml.safe_load(provider_file.read_text()).get("providers", []):
            path = provider.get("options", {}).get("path")
            if path not in targets or not any(targets[path].glob("*.json")):
                problems.append(f"dashboard provider path {path} is no mounted dashboard folder")
    if not list(provisioning.glob("datasources/*.y*ml")):
        problems.append("grafana has no provisioned data source")
    genv = {k: str(v) for k, v in (services["grafana"].get("environment") or {}).items()}
    if genv.get("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer":
        problems.append("grafana's anonymous users must be Viewers")
    admin_login_off = (
        genv.get("GF_AUTH_DISABLE_LOGIN_FORM") == "true"
        and genv.get("GF_AUTH_BASIC_ENABLED") == "false"
    )
    password = genv.get("GF_SECURITY_ADMIN_PASSWORD", "admin")
    if not admin_login_off and (password in {"", "admin"} or not password.startswith("${")):
        problems.append("grafana admin login must be off or its password come from a variable")
    home = (services["grafana"].get("environment") or {}).get(
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", ""
    )
    folder, _, file = home.rpartition("/")
    if home and not (folder in targets and (targets[folder] / file).is_file()):
        problems.append(f"grafana home dashboard {home} is not mounted")
    return problems


# --- Dockerfile ------------------------------------------------------------------------------

COMPILERS = ("gcc", "g++", "build-essential", "clang", "cc ", "make ")
REQUIRED_LABELS = {
    "org.opencontainers.image.title",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.source",
    "org.opencontainers.image.licenses",
}


def dockerfile_problems(path: Path) -> list[str]:
    """Multi-stage, slim Python 3.11 final stage, no compilers, numeric non-root user,
    exec-form entrypoint ``meetings-cdc`` with ``run``, metrics port, OCI labels."""
    import json

    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(path))
    instructions = parser.structure
    args: dict[str, str] = {}
    stages: list[list[dict[str, Any]]] = []
    for item in instructions:
        if item["instruction"] == "FROM":
            stages.append([item])
        elif stages:
            stages[-1].append(item)
        elif item["instruction"] == "ARG":
            name, _, default = item["value"].partition("=")
            args[name.strip()] = default.strip()
    problems: list[str] = []
    if len(stages) < 2:
        return ["the Dockerfile must be multi-stage (builder + slim final stage)"]
    final = stages[-1]
    base = re.sub(
        r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), final[0]["value"].split()[0]
    )
    if not re.match(r"^(docker\.io/(library/)?)?python:3\.11[.\d]*-slim", base):
        problems.append(f"final stage must be a slim Python 3.11 image, not {base}")
    by = {}
    for item in final:
        by.setdefault(item["instruction"], []).append(item["value"])
    for run in by.get("RUN", []):
        if any(word in run + " " for word in COMPILERS):
            problems.append(f"final stage installs a compiler: {run!r}")
    builder_copies = " ".join(i["value"] for i in stages[0] if i["instruction"] == "COPY")
    for link in sorted((REPO / "connector").rglob("*")):
        target = link.readlink().parts[-1] if link.is_symlink() else None
        if target and target not in builder_copies.split():
            problems.append(f"builder must COPY {target}: connector/{link.name} links to it")
    if not any("--from=" in v for v in by.get("COPY", [])):
        problems.append("final stage must copy the built environment from the builder")
    user = (by.get("USER") or [""])[-1]
    if not re.fullmatch(r"\d+(:\d+)?", user) or user.split(":")[0] == "0":
        problems.append(f"USER must be a numeric non-root uid, not {user!r}")

    def exec_form(name: str) -> list[str] | None:
        values = by.get(name) or []
        try:
            parsed = json.loads(values[-1]) if values else None
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, list) else None

    if exec_form("ENTRYPOINT") != ["meetings-cdc"]:
        problems.append('ENTRYPOINT must be the exec form ["meetings-cdc"] (PID 1 gets SIGTERM)')
    if exec_form("CMD") != ["run"]:
        problems.append('CMD must be ["run"]')
    if not any("9400" in v.split() for v in by.get("EXPOSE", [])):
        problems.append("EXPOSE 9400 (metrics) is missing")
    labels = " ".join(by.get("LABEL", []))
    missing = sorted(label for label in REQUIRED_LABELS if label not in labels)
    if missing:
        problems.append(f"OCI labels missing: {missing}")
    return problems


# --- the simulator: only in the WITH_SIMULATOR=true build, which compose's simulator uses -----


def simulator_image_problems(dockerfile: Path, compose: dict[str, Any]) -> list[str]:
    """The default image leaves the simulator (simulator/) out; ``--build-arg
    WITH_SIMULATOR=true`` installs it, and compose builds its simulator service so, apart
    from the connector's image."""
    from dockerfile_parse import DockerfileParser

    instructions = DockerfileParser(path=str(dockerfile)).structure
    problems: list[str] = []
    defaults = [
        item["value"].partition("=")[2].strip()
        for item in instructions
        if item["instruction"] == "ARG" and item["value"].partition("=")[0] == "WITH_SIMULATOR"
    ]
    if defaults != ["false"]:
        problems.append(f"the Dockerfile must declare ARG WITH_SIMULATOR=false, not {defaults}")
    installs = [
        item["value"]
        for item in instructions
        if item["instruction"] == "RUN" and "./simulator" in item["value"]
    ]
    if not installs:
        problems.append("no RUN installs ./simulator (for WITH_SIMULATOR=true)")
    for run in installs:
        if not re.search(r'if \[ "\$\{?WITH_SIMULATOR\}?" = "?true"? \]', run):
            problems.append("./simulator must be installed only if WITH_SIMULATOR=true")

    services = compose.get("services") or {}

    def with_simulator(name: str) -> str:
        build = (services.get(name) or {}).get("build")
        args = (build.get("args") if isinstance(build, dict) else None) or {}
        return str(args.get("WITH_SIMULATOR", "false")).lower()

    if with_simulator("simulator") != "true":
        problems.append("the compose simulator must build with WITH_SIMULATOR=true")
    if with_simulator("connector") == "true":
        problems.append("the compose connector must run the image without the simulator")
    images = {name: (services.get(name) or {}).get("image") for name in ("simulator", "connector")}
    if images["simulator"] == images["connector"]:
        problems.append(f"the simulator and connector images need two tags, not {images}")
    return problems


# --- commands given to the image ------------------------------------------------------------


def command_problems(args: list[str]) -> list[str]:
    """The arguments parse with the real ``meetings-cdc`` command line (exit 2 otherwise)."""
    import contextlib
    import io

    from connector.cli.router import build_parser

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(args)
    except SystemExit as exc:
        return [f"meetings-cdc {' '.join(args)}: exit {exc.code}: {stderr.getvalue().strip()}"]
    return []
