"""The offline validators of the deployment artefacts, and the checks built on them.

Every function here takes the artefact (a path or rendered documents) as an argument, so the
tests run each check on the committed files and on deliberately broken copies. A missing tool
fails the test that needs it (``pytest.fail``); nothing here ever skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
TOOLS_BIN = (
    Path(os.environ.get("MEETINGS_CDC_TOOLS_DIR", Path.home() / ".cache/meetings-cdc/tools"))
    / "bin"
)
# Kubernetes versions the manifests must validate against: an old supported one and the
# newest whose schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.30.0", "latest")
# Kinds of the Prometheus operator: no bundled schema; deploycheck decodes them strictly.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule", "PodMonitor"}


def tool(name: str) -> Path:
    """Path of a validator binary; fails the test when it is not installed."""
    candidates = [TOOLS_BIN / name, Path(sys.executable).parent / name]
    found = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
    if found is None and (which := shutil.which(name)):
        found = Path(which)
    if found is None:
        pytest.fail(
            f"validator {name!r} is not installed (looked in {TOOLS_BIN} and the venv): "
            "run .ci/install-tools (Go tools) or make venv (Python tools)"
        )
    return found


def run(args: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a validator, capturing its output (no shell, bounded in time)."""
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


# --- kustomize -----------------------------------------------------------------------------


def kustomize_build(directory: Path) -> str:
    """Render a kustomization; fails with kustomize's message when it does not build."""
    result = run([tool("kustomize"), "build", directory])
    if result.returncode != 0:
        raise AssertionError(f"kustomize build {directory} failed:\n{result.stderr}")
    return result.stdout


HELM_CHART = REPO / "deploy" / "helm" / "meetings-cdc"
# The release name under which the chart's objects carry the kustomize base's names.
HELM_RELEASE = "meetings-cdc"
# The settings values.schema.json requires (a bare install is refused: the connector would exit
# 2). Every render and lint passes them first (with --set, so that a later --set overrides them;
# helm applies every --set-string after every --set), unless ``bare``.
HELM_REQUIRED_SETTINGS = {
    "MEETINGS_CDC_API_BASE_URL": "https://api.expoplatform.example",
    "MEETINGS_CDC_EVENT_IDS": "1201",
}


def _required_values(bare: bool) -> list[str]:
    if bare:
        return []
    return [
        arg
        for name, value in HELM_REQUIRED_SETTINGS.items()
        for arg in ("--set", f"settings.{name}={value}")
    ]


def helm_template(chart: Path, *args: str, release: str = HELM_RELEASE, bare: bool = False) -> str:
    """Render a chart offline; fails with helm's message when it does not render."""
    result = helm_template_result(chart, *args, release=release, bare=bare)
    if result.returncode != 0:
        raise AssertionError(f"helm template {chart} failed:\n{result.stderr}")
    return result.stdout


def helm_template_result(
    chart: Path, *args: str, release: str = HELM_RELEASE, bare: bool = False
) -> subprocess.CompletedProcess[str]:
    """``helm template`` as it ran (exit code, output), for renders that must fail."""
    return run([tool("helm"), "template", release, chart, *_required_values(bare), *args])


def helm_lint(chart: Path, *args: str, bare: bool = False) -> subprocess.CompletedProcess[str]:
    """``helm lint --strict`` (warnings fail too)."""
    return run([tool("helm"), "lint", "--strict", chart, *_required_values(bare), *args])


def documents(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML stream."""
    return [d for d in yaml.safe_load_all(text) if d]


# --- schemas: kubernetes-validate (bundled schemas) + deploycheck (operator kinds, PSS) ----


def schema_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Strict schema validation of every built-in kind against the bundled schemas.

    Operator kinds have no bundled schema and are left to :func:`deploycheck_k8s`; any other
    kind without a schema is itself a problem, so nothing passes unchecked.
    """
    import kubernetes_validate

    versions = [kubernetes_validate.latest_version() if v == "latest" else v for v in K8S_VERSIONS]
    problems: list[str] = []
    for doc in docs:
        what = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                if doc.get("kind") not in OPERATOR_KINDS:
                    problems.append(f"{what}: no schema for Kubernetes {version}")
            except kubernetes_validate.ValidationError as exc:
                problems.append(f"{what} (Kubernetes {version}): {exc.message} at {exc.path}")
    return problems


@dataclass(frozen=True)
class DeployCheck:
    """Outcome of ``deploycheck``: exit code, per-document reports, messages."""

    returncode: int
    reports: list[dict[str, Any]]
    stderr: str


def deploycheck(*args: str | Path, stdin: str | None = None) -> DeployCheck:
    """Run ``deploycheck`` (compose or k8s subcommand)."""
    result = run([tool("deploycheck"), *args], input=stdin)
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return DeployCheck(result.returncode, reports, result.stderr)


def deploycheck_k8s(rendered: str) -> DeployCheck:
    """Strict operator kinds and the Restricted pod security standard on a rendered stream."""
    return deploycheck("k8s", "-", stdin=rendered)


# --- hadolint -----------------------------------------------------------------------------


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """Lint a Dockerfile with hadolint (any finding fails)."""
    return run([tool("hadolint"), "--no-color", "--failure-threshold", "info", dockerfile])


# --- settings: every MEETINGS_CDC_* variable must be one the connector reads ---------------


def known_settings() -> set[str]:
    """Every environment variable the connector reads (all settings classes)."""
    from connector.config import settings as config

    names = {config.CONFIG_FILE_VARIABLE}
    pending: list[type[Any]] = [config._Base]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        names.update(config.env_name(field) for field in cls.model_fields)
    return names


# Non-setting variables a connector container may carry besides MEETINGS_CDC_*.
ALLOWED_OTHER_ENV = {"TZ", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONFAULTHANDLER"}


def env_problems(names: set[str], *, strict_prefix: bool) -> list[str]:
    """Names that are no connector setting.

    With ``strict_prefix`` (the connector's own containers and ConfigMaps) every name must be
    a setting or one of :data:`ALLOWED_OTHER_ENV`, so a misspelt prefix cannot slip through.
    """
    known = known_settings()
    problems = []
    for name in sorted(names):
        if name.startswith("MEETINGS_CDC_"):
            if name not in known:
                problems.append(f"{name} is not a setting the connector reads")
        elif strict_prefix and name not in ALLOWED_OTHER_ENV:
            problems.append(f"{name} is neither a MEETINGS_CDC_ setting nor allowed")
    return problems


def manifest_env(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Environment names per workload container, from ``env`` and ``envFrom`` ConfigMaps."""
    config_maps = {
        d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"
    }
    found: dict[str, set[str]] = {}
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef")
                if ref:
                    names |= set(config_maps.get(ref["name"], {}))
            found[f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"] = names
    return found


def compose_env(compose: dict[str, Any]) -> dict[str, set[str]]:
    """Environment names per compose service (mapping or list form)."""
    found = {}
    for name, service in (compose.get("services") or {}).items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        found[name] = set(env)
    return found


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a workload object, or None."""
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("spec")
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None
