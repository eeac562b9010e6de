"""deploy/k8s: builds, matches the Kubernetes schemas, meets the Restricted standard, fits."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import KUSTOMIZATIONS
from tests.deploy.structure import (
    command_problems,
    config_env,
    connector_workload,
    instance_id_problems,
    kafka_security_problems,
    settings_problems,
    workload_problems,
)
from tests.deploy.tools import (
    K8S,
    OPERATOR_KINDS,
    REPO,
    deploycheck_k8s,
    documents,
    kustomize_build,
    schema_problems,
)

NAMES = sorted(KUSTOMIZATIONS)


def load_generator() -> Any:
    """deploy/k8s/generate_prometheusrule.py as a module."""
    spec = importlib.util.spec_from_file_location(
        "generate_prometheusrule", K8S / "generate_prometheusrule.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_kustomization_builds(rendered: dict[str, str], name: str) -> None:
    assert "kind: Deployment" in rendered[name]


@pytest.mark.parametrize("name", NAMES)
def test_manifests_match_bundled_kubernetes_schemas(rendered_docs, name: str) -> None:
    assert schema_problems(rendered_docs[name]) == []


@pytest.mark.parametrize("name", NAMES)
def test_operator_kinds_decode_strictly_and_pods_meet_restricted_standard(
    rendered: dict[str, str], name: str
) -> None:
    result = deploycheck_k8s(rendered[name])
    assert result.returncode == 0, result.stderr
    checks = {(r["kind"], r["name"]): set(r["checks"]) for r in result.reports}
    assert checks[("Deployment", "meetings-cdc")] == {"strict-decode", "pod-security-restricted"}
    assert checks[("ServiceMonitor", "meetings-cdc")] == {"strict-decode"}
    assert checks[("PrometheusRule", "meetings-cdc")] == {"strict-decode"}


@pytest.mark.parametrize("name", NAMES)
def test_no_document_escapes_validation(rendered: dict[str, str], rendered_docs, name) -> None:
    """Built-in kinds meet kubernetes-validate; every other kind must be strictly decoded."""
    strict = {
        r["kind"] for r in deploycheck_k8s(rendered[name]).reports if "strict-decode" in r["checks"]
    }
    for doc in rendered_docs[name]:
        if doc["kind"] in OPERATOR_KINDS:
            assert doc["kind"] in strict
    # any other kind without a bundled schema is a problem for schema_problems itself


def test_base_workload_fits_together(rendered_docs) -> None:
    # the base leaves the Secret to the overlay or an external secret operator
    assert workload_problems(rendered_docs["base"], require_secret=False) == []


def test_example_overlay_fits_together(rendered_docs) -> None:
    assert workload_problems(rendered_docs["example"], require_secret=True) == []


def test_example_overlay_wires_kafka_sasl_ssl_with_a_ca(rendered_docs) -> None:
    assert kafka_security_problems(rendered_docs["example"]) == []


def test_example_overlay_settings_load_in_the_connector(rendered_docs) -> None:
    """The connector's own loader accepts the overlay's settings (values, not just names)."""
    docs = rendered_docs["example"]
    _, container = connector_workload(docs)
    env = config_env(docs, container)
    assert env["MEETINGS_CDC_API_KEY"].startswith("REPLACE-WITH")  # placeholder Secret
    # Its placeholder secrets are refused at start-up (and only they); real ones load.
    (problem,) = settings_problems(env)
    assert "MEETINGS_CDC_API_KEY: is a placeholder" in problem
    assert "REPLACE-WITH" not in problem
    secrets = {
        name: "a-real-secret-value"
        for name in env
        if env[name].startswith("REPLACE-WITH") or ":REPLACE-WITH" in env[name]
    }
    assert settings_problems({**env, **secrets}) == []


def test_example_namespace_enforces_restricted(rendered_docs) -> None:
    (namespace,) = [d for d in rendered_docs["example"] if d["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [d for d in rendered_docs["example"] if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {namespace["metadata"]["name"]}


def test_prometheusrule_is_generated_from_the_alert_rules(rendered_docs) -> None:
    generator = load_generator()
    expected = generator.render(generator.RULES.read_text(encoding="utf-8"))
    committed = generator.OUTPUT.read_text(encoding="utf-8")
    assert committed == expected, (
        "deploy/k8s/base/prometheusrule.yaml is stale: run "
        ".venv/bin/python deploy/k8s/generate_prometheusrule.py"
    )
    assert generator.HELM_RULES.read_text(encoding="utf-8") == generator.RULES.read_text(
        encoding="utf-8"
    ), "the Helm chart's files/alerts.yml is stale: run deploy/k8s/generate_prometheusrule.py"
    alerts = yaml.safe_load((REPO / "deploy/monitoring/prometheus/alerts.yml").read_text())
    for docs in rendered_docs.values():
        (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
        assert rule["spec"]["groups"] == alerts["groups"]


@pytest.mark.parametrize("name", NAMES)
def test_container_args_parse(rendered_docs, name: str) -> None:
    _, container = connector_workload(rendered_docs[name])
    assert command_problems(container.get("args", [])) == []


def test_image_tag_and_label_follow_the_package_version(rendered_docs) -> None:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    _, container = connector_workload(rendered_docs["base"])
    assert container["image"] == f"meetings-cdc:{version}"
    assert f"ARG VERSION={version}\n" in (REPO / "Dockerfile").read_text()


def test_prometheusrule_runbook_urls_move_to_another_base_url() -> None:
    """A fork publishing the runbook elsewhere gets every runbook_url rebased, anchors kept."""
    generator = load_generator()
    text = generator.RULES.read_text(encoding="utf-8")
    (default,) = documents(generator.render(text))
    (moved,) = documents(generator.render(text, "https://git.example/ops/RUNBOOK.md"))
    urls = [r["annotations"]["runbook_url"] for g in moved["spec"]["groups"] for r in g["rules"]]
    names = [r["alert"] for g in moved["spec"]["groups"] for r in g["rules"]]
    assert urls == [f"https://git.example/ops/RUNBOOK.md#{n.lower()}" for n in names]
    assert all(
        r["annotations"]["runbook_url"].startswith(generator.RUNBOOK_BASE_URL + "#")
        for g in default["spec"]["groups"]
        for r in g["rules"]
    )


def test_without_operator_component_drops_only_the_operator_kinds(rendered_docs) -> None:
    """A cluster without the monitoring.coreos.com CRDs can apply everything else, valid."""
    rendered = kustomize_build(K8S / "overlays" / "without-prometheus-operator")
    docs = documents(rendered)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    base = {(d["kind"], d["metadata"]["name"]) for d in rendered_docs["base"]}
    assert kinds == {k for k in base if k[0] not in OPERATOR_KINDS}
    assert not any(d["apiVersion"].startswith("monitoring.coreos.com/") for d in docs)
    assert schema_problems(docs) == []
    result = deploycheck_k8s(rendered)
    assert result.returncode == 0, result.stderr
    checks = {(r["kind"], r["name"]): set(r["checks"]) for r in result.reports}
    assert checks[("Deployment", "meetings-cdc")] == {"strict-decode", "pod-security-restricted"}


def test_example_overlay_labels_operator_objects_for_kube_prometheus_stack(rendered_docs) -> None:
    """kube-prometheus-stack selects ServiceMonitors and PrometheusRules by `release`."""
    for doc in rendered_docs["example"]:
        labels = doc["metadata"].get("labels") or {}
        if doc["kind"] in OPERATOR_KINDS:
            assert labels.get("release") == "kube-prometheus-stack", doc["kind"]
        else:
            assert "release" not in labels, doc["kind"]


def test_base_sets_the_instance_id_from_the_pod_name(rendered_docs) -> None:
    """Static membership by default: MEETINGS_CDC_INSTANCE_ID from metadata.name."""
    for name in NAMES:
        _, container = connector_workload(rendered_docs[name])
        (entry,) = [e for e in container["env"] if e["name"] == "MEETINGS_CDC_INSTANCE_ID"]
        assert entry == {
            "name": "MEETINGS_CDC_INSTANCE_ID",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        }, name
        assert instance_id_problems(container, static_membership=True) == [], name


def test_dynamic_membership_component_removes_only_the_instance_id(rendered_docs, tmp_path):
    """The opt-out component renders without MEETINGS_CDC_INSTANCE_ID, everything else kept."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "base", tmp_path)],
                "components": [
                    os.path.relpath(K8S / "components" / "dynamic-membership", tmp_path)
                ],
            }
        ),
        encoding="utf-8",
    )
    rendered = kustomize_build(tmp_path)
    docs = documents(rendered)
    _, container = connector_workload(docs)
    assert instance_id_problems(container, static_membership=False) == []
    assert instance_id_problems(container, static_membership=True) != []
    assert workload_problems(docs, require_secret=False, static_membership=False) == []
    assert workload_problems(docs, require_secret=False) != []
    _, base = connector_workload(rendered_docs["base"])
    assert container["env"] == [e for e in base["env"] if e["name"] != "MEETINGS_CDC_INSTANCE_ID"]
    assert schema_problems(docs) == []
    assert deploycheck_k8s(rendered).returncode == 0
