"""deploy/helm/meetings-cdc: lints, renders, passes the base's validators, agrees with it."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.structure import (
    ALERT_JOB_REGEX,
    INSTANCE_LABEL,
    command_problems,
    config_env,
    connector_workload,
    instance_id_problems,
    scrape_jobs,
    settings_problems,
    workload_problems,
)
from tests.deploy.tools import (
    HELM_CHART,
    HELM_REQUIRED_SETTINGS,
    OPERATOR_KINDS,
    REPO,
    deploycheck_k8s,
    documents,
    env_problems,
    helm_lint,
    helm_template,
    helm_template_result,
    manifest_env,
    pod_spec,
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
            # the settings every chart render gets (values.schema.json requires them)
            data = doc.get("data") or {}
            for key, value in HELM_REQUIRED_SETTINGS.items():
                if data.get(key) == value:
                    del data[key]
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
    # values that are Kubernetes objects handed on as they are: named, not their fields
    objects = {"settings", "resources", "strategy", "podSecurityContext", "securityContext"}
    objects |= {"startupProbe", "livenessProbe", "readinessProbe"}
    names = []
    for key, value in values.items():
        if isinstance(value, dict) and key not in objects and value:
            names += [
                f"{key}.{sub}" if f"`{key}.{sub}`" in kubernetes else f".{sub}" for sub in value
            ]
        else:
            names.append(key)
    missing = [n for n in names if f"`{n}" not in kubernetes and f"{n}`" not in kubernetes]
    assert missing == [], f"README Kubernetes/Helm lacks {missing}"


def test_chart_static_membership_sets_the_instance_id_from_the_pod_name(helm_docs) -> None:
    """On by default (INSTANCE_ID from metadata.name); staticMembership=false leaves it out."""
    _, default = connector_workload(helm_docs)
    assert instance_id_problems(default, static_membership=True) == []
    assert instance_id_problems(default, static_membership=False) != []
    dynamic_docs = documents(helm_template(HELM_CHART, "--set", "staticMembership=false"))
    _, dynamic = connector_workload(dynamic_docs)
    assert instance_id_problems(dynamic, static_membership=False) == []
    assert instance_id_problems(dynamic, static_membership=True) != []
    assert workload_problems(dynamic_docs, require_secret=False, static_membership=False) == []
    assert dynamic["env"] == [e for e in default["env"] if e["name"] != "MEETINGS_CDC_INSTANCE_ID"]


# --- a bare install, values.schema.json ----------------------------------------------------


def test_a_bare_install_is_refused_naming_the_required_settings() -> None:
    """Without the API URL and the event ids the pods would exit 2: the schema says so first."""
    for result in (helm_template_result(HELM_CHART, bare=True), helm_lint(HELM_CHART, bare=True)):
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "MEETINGS_CDC_API_BASE_URL" in output
        assert "MEETINGS_CDC_EVENT_IDS" in output
    # with them it renders, and the connector's own loader accepts the result
    docs = documents(helm_template(HELM_CHART, bare=False))
    _, container = connector_workload(docs)
    env = config_env(docs, container) | {"MEETINGS_CDC_API_KEY": "a-real-key"}
    assert settings_problems(env) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set-string", "settings.MEETINGS_CDC_EVENT_IDS=twelve"), "MEETINGS_CDC_EVENT_IDS"),
        (("--set-string", "settings.MEETINGS_CDC_API_BASE_URL=api.example"), "API_BASE_URL"),
        (("--set", "replica=3"), "replica"),
        (("--set", "secret.create=true"), "apiKey"),
        (("--set", "podLabel.team=a"), "podLabel"),
    ],
)
def test_the_values_schema_rejects_mistakes(args: tuple[str, ...], message: str) -> None:
    result = helm_template_result(HELM_CHART, *args)
    assert result.returncode != 0
    assert message in result.stderr


# --- the scrape job and selectors: name overrides, two releases -----------------------------


def _promtool_unit_test(tmp_path, name: str, test: dict[str, Any]) -> None:
    """Run one ``promtool test rules`` case against deploy/monitoring's alerts.yml."""
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: run .ci/install-system-packages", pytrace=False)
    alerts = REPO / "deploy" / "monitoring" / "prometheus" / "alerts.yml"
    path = tmp_path / f"{name}_test.yml"
    path.write_text(
        yaml.safe_dump(
            {"rule_files": [str(alerts)], "evaluation_interval": "1m", "tests": [test]},
            sort_keys=False,
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", path.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _down_and_absent_test(jobs: list[str]) -> dict[str, Any]:
    """The first job's target is down from 1m, the others' up: Down fires for the first job
    only, Absent never."""
    return {
        "interval": "1m",
        "input_series": [
            {
                "series": f'up{{job="{job}", instance="10.0.0.{i}:9400"}}',
                "values": "1 0x10" if i == 0 else "1x10",
            }
            for i, job in enumerate(jobs)
        ],
        "alert_rule_test": [
            {
                "eval_time": "5m",
                "alertname": "MeetingsCdcDown",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "critical",
                            "job": jobs[0],
                            "instance": "10.0.0.0:9400",
                        },
                        "exp_annotations": {
                            "summary": "meetings-cdc 10.0.0.0:9400 cannot be scraped",
                            "description": (
                                f"Prometheus has failed to scrape 10.0.0.0:9400 (job {jobs[0]}) "
                                "for 2 minutes: the process is down, crash-looping, or /metrics "
                                "is unreachable. No change events are being published by it."
                            ),
                            "runbook_url": (
                                "https://github.com/meetings-cdc/meetings-cdc/blob/main/deploy/"
                                "monitoring/RUNBOOK.md#meetingscdcdown"
                            ),
                        },
                    }
                ],
            },
            {"eval_time": "10m", "alertname": "MeetingsCdcAbsent", "exp_alerts": []},
        ],
    }


NAMES = {
    "default": ("meetings-cdc", ()),
    "release name without the chart name": ("sync", ()),
    "nameOverride": ("cdc", ("--set", "nameOverride=expo-sync")),
    "fullnameOverride": ("prod", ("--set", "fullnameOverride=expo-2026")),
    "fullnameOverride naming the chart": ("x", ("--set", "fullnameOverride=meetings-cdc-blue")),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_the_scrape_job_matches_the_alert_rules_whatever_the_names(case: str, tmp_path) -> None:
    """The ServiceMonitor's jobLabel gives the targets a job the alerts' regex matches (without
    it the job would be the Service's name, e.g. expo-2026-metrics): promtool shows "down"
    firing for that job and "absent" silent."""
    release, args = NAMES[case]
    docs = documents(helm_template(HELM_CHART, *args, release=release))
    assert workload_problems(docs, require_secret=False) == []
    (jobs,) = scrape_jobs(docs).values()
    (job,) = jobs
    assert re.fullmatch(ALERT_JOB_REGEX, job), job
    _promtool_unit_test(tmp_path, "names", _down_and_absent_test([job, "other"]))


def test_two_releases_in_one_namespace_select_only_their_own_objects(tmp_path) -> None:
    """Each release's ServiceMonitor scrapes its own Service, each Service, PDB, NetworkPolicy
    and Deployment selects its own pods; the jobs differ and both match the alerts."""
    releases = {
        "cdc-a": documents(helm_template(HELM_CHART, release="cdc-a")),
        "cdc-b": documents(
            helm_template(HELM_CHART, "--set", "nameOverride=meetings-cdc", release="cdc-b")
        ),
    }
    both = [doc for docs in releases.values() for doc in docs]
    names = [(d["kind"], d["metadata"]["name"]) for d in both]
    assert len(names) == len(set(names)), "two releases render an object of the same name"
    pods = {
        release: next(d for d in docs if pod_spec(d) is not None)["spec"]["template"]["metadata"]
        for release, docs in releases.items()
    }

    def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    for release, docs in releases.items():
        (other,) = set(releases) - {release}
        for doc in docs:
            selector = {
                "Service": lambda d: d["spec"]["selector"],
                "Deployment": lambda d: d["spec"]["selector"]["matchLabels"],
                "PodDisruptionBudget": lambda d: d["spec"]["selector"]["matchLabels"],
                "NetworkPolicy": lambda d: d["spec"]["podSelector"]["matchLabels"],
            }.get(doc["kind"])
            if selector is not None:
                assert matches(selector(doc), pods[release]["labels"]), doc["kind"]
                assert not matches(selector(doc), pods[other]["labels"]), doc["kind"]
        (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
        assert monitor["spec"]["selector"]["matchLabels"][INSTANCE_LABEL] == release
        chosen = [
            s["metadata"]["name"]
            for s in both
            if s["kind"] == "Service"
            and matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert chosen == [f"{release}-meetings-cdc-metrics"]
    jobs = [next(iter(j)) for docs in releases.values() for j in scrape_jobs(docs).values()]
    assert len(set(jobs)) == 2, jobs
    assert all(re.fullmatch(ALERT_JOB_REGEX, job) for job in jobs), jobs
    # one release down: the alert names that release's job only
    _promtool_unit_test(tmp_path, "two_releases", _down_and_absent_test(jobs))


# --- the knobs a platform team expects -----------------------------------------------------


def test_extra_env_and_env_from_reach_the_container() -> None:
    """A secret Kafka property from a Secret (not the ConfigMap), and a whole Secret as env."""
    docs = documents(
        helm_template(
            HELM_CHART,
            "--set", "extraEnv[0].name=MEETINGS_CDC_KAFKA_PROPERTIES",
            "--set", "extraEnv[0].valueFrom.secretKeyRef.name=kafka-oauth",
            "--set", "extraEnv[0].valueFrom.secretKeyRef.key=properties",
            "--set", "extraEnvFrom[0].secretRef.name=meetings-cdc-kafka",
        )
    )  # fmt: skip
    assert schema_problems(docs) == []
    _, container = connector_workload(docs)
    assert container["env"][-1] == {
        "name": "MEETINGS_CDC_KAFKA_PROPERTIES",
        "valueFrom": {"secretKeyRef": {"name": "kafka-oauth", "key": "properties"}},
    }
    assert container["envFrom"][0]["configMapRef"]["name"] == "meetings-cdc-config"
    assert container["envFrom"][1] == {"secretRef": {"name": "meetings-cdc-kafka"}}
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert "MEETINGS_CDC_KAFKA_PROPERTIES" not in config_map["data"]
    for names in manifest_env(docs).values():
        assert env_problems(names, strict_prefix=True) == []


def test_security_contexts_can_be_overridden_for_openshift() -> None:
    """OpenShift assigns its own UID: the fixed ids can be dropped, the rest stays Restricted."""
    rendered = helm_template(
        HELM_CHART,
        "--set", "podSecurityContext.runAsUser=null",
        "--set", "podSecurityContext.runAsGroup=null",
        "--set", "podSecurityContext.fsGroup=null",
        "--set", "securityContext.readOnlyRootFilesystem=true",
    )  # fmt: skip
    docs = documents(rendered)
    deployment, container = connector_workload(docs)
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert schema_problems(docs) == []
    result = deploycheck_k8s(rendered)
    assert result.returncode == 0, result.stderr
    # and a container setting of one's own
    _, container = connector_workload(
        documents(helm_template(HELM_CHART, "--set", "securityContext.runAsUser=1000680000"))
    )
    assert container["securityContext"]["runAsUser"] == 1000680000
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_probes_can_be_overridden() -> None:
    docs = documents(
        helm_template(
            HELM_CHART,
            "--set", "startupProbe.failureThreshold=180",
            "--set", "readinessProbe.periodSeconds=5",
        )
    )  # fmt: skip
    _, container = connector_workload(docs)
    assert container["startupProbe"]["failureThreshold"] == 180
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["periodSeconds"] == 5
    assert container["livenessProbe"]["periodSeconds"] == 15
    assert workload_problems(docs, require_secret=False) == []


def test_pod_labels_priority_class_and_annotations_reach_their_objects() -> None:
    docs = documents(
        helm_template(
            HELM_CHART,
            "--set", "podLabels.team=platform",
            "--set", "priorityClassName=cdc-high",
            "--set", "serviceAccount.annotations.iam\\.example/role=cdc",
            "--set", "service.annotations.scrape\\.example/port=9400",
        )
    )  # fmt: skip
    assert schema_problems(docs) == []
    by_kind = {d["kind"]: d for d in docs}
    deployment = by_kind["Deployment"]
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "platform"
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]
    assert template["spec"]["priorityClassName"] == "cdc-high"
    account = by_kind["ServiceAccount"]["metadata"]
    assert account["annotations"] == {"iam.example/role": "cdc"}
    assert by_kind["Service"]["metadata"]["annotations"] == {"scrape.example/port": "9400"}
    # none of them by default
    defaults = {d["kind"]: d for d in documents(helm_template(HELM_CHART))}
    assert "priorityClassName" not in defaults["Deployment"]["spec"]["template"]["spec"]
    assert "annotations" not in defaults["ServiceAccount"]["metadata"]
    assert "annotations" not in defaults["Service"]["metadata"]


def test_the_chart_can_create_the_api_key_secret() -> None:
    """secret.create: a Secret of the chart's own, referenced under the configured keys; the
    connector's loader accepts what the container gets. Off by default (no Secret object)."""
    assert "Secret" not in {d["kind"] for d in documents(helm_template(HELM_CHART))}
    docs = documents(
        helm_template(
            HELM_CHART,
            "--set", "secret.create=true",
            "--set", "secret.apiKey=a-real-api-key",
            "--set", "secret.kafkaSaslPassword=a-real-password",
            release="cdc",
        )
    )  # fmt: skip
    assert schema_problems(docs) == []
    assert workload_problems(docs, require_secret=True) == []
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "cdc-meetings-cdc-secrets"
    assert secret["stringData"] == {
        "api-key": "a-real-api-key",
        "kafka-sasl-password": "a-real-password",
    }
    deployment, container = connector_workload(docs)
    env = config_env(docs, container)
    assert env["MEETINGS_CDC_API_KEY"] == "a-real-api-key"
    assert env["MEETINGS_CDC_KAFKA_SASL_PASSWORD"] == "a-real-password"
    assert "checksum/secret" in deployment["spec"]["template"]["metadata"]["annotations"]
    assert settings_problems(env) == []
