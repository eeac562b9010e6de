"""deploy/helm/meetings-cdc: lints, renders, passes the base's validators, agrees with it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.structure import (
    command_problems,
    connector_workload,
    instance_id_problems,
    workload_problems,
)
from tests.deploy.tools import (
    HELM_CHART,
    OPERATOR_KINDS,
    REPO,
    deploycheck_k8s,
    documents,
    env_problems,
    helm_lint,
    helm_template,
    manifest_env,
    schema_problems,
)

CONFIG_MAP = "meetings-cdc-config"


@pytest.fixture(scope="module")
def helm_rendered() -> str:
    """``helm template meetings-cdc deploy/helm/meetings-cdc`` with the default values."""
    return helm_template(HELM_CHART)


@pytest.fixture(scope="module")
def helm_docs(helm_rendered: str) -> list[dict[str, Any]]:
    return documents(helm_rendered)


def test_chart_lints_strictly() -> None:
    result = helm_lint(HELM_CHART)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_matches_bundled_kubernetes_schemas(helm_docs) -> None:
    assert schema_problems(helm_docs) == []


def test_chart_operator_kinds_decode_strictly_and_pods_meet_restricted(helm_rendered) -> None:
    result = deploycheck_k8s(helm_rendered)
    assert result.returncode == 0, result.stderr
    checks = {(r["kind"], r["name"]): set(r["checks"]) for r in result.reports}
    assert checks[("Deployment", "meetings-cdc")] == {"strict-decode", "pod-security-restricted"}
    assert checks[("ServiceMonitor", "meetings-cdc")] == {"strict-decode"}
    assert checks[("PrometheusRule", "meetings-cdc")] == {"strict-decode"}


def test_chart_workload_fits_together(helm_docs) -> None:
    assert workload_problems(helm_docs, require_secret=False) == []
    _, container = connector_workload(helm_docs)
    assert command_problems(container.get("args", [])) == []
    for names in manifest_env(helm_docs).values():
        assert env_problems(names, strict_prefix=True) == []


def _comparable(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """What must not drift, per (kind, name): everything but labels, annotations and the
    ConfigMap's kustomize hash suffix (Helm rolls pods by a checksum annotation instead)."""
    found = {}
    for doc in docs:
        doc = yaml.safe_load(yaml.safe_dump(doc))  # a deep copy
        name = doc["metadata"]["name"]
        if doc["kind"] == "ConfigMap" and name.startswith(CONFIG_MAP):
            name = CONFIG_MAP
        body = {k: v for k, v in doc.items() if k != "metadata"}
        if doc["kind"] == "Deployment":
            template = body["spec"]["template"]
            template["metadata"] = {}
            for container in template["spec"]["containers"]:
                for source in container.get("envFrom", []):
                    if source.get("configMapRef", {}).get("name", "").startswith(CONFIG_MAP):
                        source["configMapRef"]["name"] = CONFIG_MAP
        found[(doc["kind"], name)] = body
    return found


def test_chart_renders_what_the_kustomize_base_renders(helm_docs, rendered_docs) -> None:
    """Same kinds and names; identical specs: image, args, ports, probes, securityContext,
    env, settings, resources, selectors, rules. A change to one must be made to the other."""
    helm = _comparable(helm_docs)
    base = _comparable(rendered_docs["base"])
    assert sorted(helm) == sorted(base)
    for key in sorted(base):
        assert helm[key] == base[key], f"{key} differs between the chart and the base"


def test_chart_labels_include_the_bases_and_its_selectors_match(helm_docs, rendered_docs) -> None:
    base_labels = {
        (kind, name): next(
            d["metadata"].get("labels", {})
            for d in rendered_docs["base"]
            if d["kind"] == kind and d["metadata"]["name"].startswith(name)
        )
        for kind, name in _comparable(rendered_docs["base"])
    }
    for doc in helm_docs:
        labels = doc["metadata"]["labels"]
        expected = base_labels[(doc["kind"], doc["metadata"]["name"])]
        assert expected.items() <= labels.items(), doc["kind"]


def test_chart_without_operator_objects(rendered_docs) -> None:
    rendered = helm_template(
        HELM_CHART, "--set", "serviceMonitor.enabled=false", "--set", "prometheusRule.enabled=false"
    )
    docs = documents(rendered)
    assert {d["kind"] for d in docs} == {
        d["kind"] for d in rendered_docs["base"] if d["kind"] not in OPERATOR_KINDS
    }
    assert schema_problems(docs) == []


def test_chart_values_reach_the_objects() -> None:
    """Monitoring labels for kube-prometheus-stack, image, replicas, settings, Secret, runbooks."""
    docs = documents(
        helm_template(
            HELM_CHART,
            "--set", "serviceMonitor.labels.release=kube-prometheus-stack",
            "--set", "prometheusRule.labels.release=kube-prometheus-stack",
            "--set", "image.repository=registry.example/meetings-cdc,image.tag=9.9.9",
            "--set", "replicas=3,podDisruptionBudget.maxUnavailable=2",
            "--set", "existingSecret.name=cdc-creds",
            "--set", "settings.MEETINGS_CDC_EVENT_IDS=1201\\,1202",
            "--set", "prometheusRule.runbookBaseUrl=https://wiki.example/RUNBOOK.md",
        )
    )  # fmt: skip
    by_kind = {d["kind"]: d for d in docs}
    for kind in OPERATOR_KINDS & set(by_kind):
        assert by_kind[kind]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "release" not in by_kind["Deployment"]["metadata"]["labels"]
    deployment, container = connector_workload(docs)
    assert container["image"] == "registry.example/meetings-cdc:9.9.9"
    assert deployment["spec"]["replicas"] == 3
    assert by_kind["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 2
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "secretKeyRef" in e["valueFrom"]
    }
    assert refs == {"cdc-creds"}
    assert by_kind["ConfigMap"]["data"]["MEETINGS_CDC_EVENT_IDS"] == "1201,1202"
    rules = [r for g in by_kind["PrometheusRule"]["spec"]["groups"] for r in g["rules"]]
    assert {r["annotations"]["runbook_url"] for r in rules} == {
        f"https://wiki.example/RUNBOOK.md#{r['alert'].lower()}" for r in rules
    }


def test_chart_default_image_tag_is_the_package_version(helm_docs) -> None:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((HELM_CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    _, container = connector_workload(helm_docs)
    assert container["image"] == f"meetings-cdc:{version}"


def test_readme_documents_every_chart_value() -> None:
    """Each value of values.yaml (to the second level) is named in README's Kubernetes section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    kubernetes = readme.split("### Kubernetes", 1)[1].split("\n### ", 1)[0]
    values = yaml.safe_load((HELM_CHART / "values.yaml").read_text(encoding="utf-8"))
    names = []
    for key, value in values.items():
        if isinstance(value, dict) and key not in {"settings", "resources", "strategy"} and value:
            names += [
                f"{key}.{sub}" if f"`{key}.{sub}`" in kubernetes else f".{sub}" for sub in value
            ]
        else:
            names.append(key)
    missing = [n for n in names if f"`{n}" not in kubernetes and f"{n}`" not in kubernetes]
    assert missing == [], f"README Kubernetes/Helm lacks {missing}"


def test_chart_static_membership_sets_the_instance_id_from_the_pod_name(helm_docs) -> None:
    _, default = connector_workload(helm_docs)
    assert instance_id_problems(default, static_membership=False) == []
    _, static = connector_workload(
        documents(helm_template(HELM_CHART, "--set", "staticMembership=true"))
    )
    assert instance_id_problems(static, static_membership=True) == []
