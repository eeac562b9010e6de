"""Every validator is proven to reject a deliberately broken copy of what it checks.

Each case copies the real artefact into a tmp dir, breaks one thing with a textual
replacement (asserted to apply, so a case cannot silently stop breaking anything) and
asserts that the validator rejects the copy, naming the problem.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy.structure import (
    command_problems,
    compose_problems,
    dockerfile_problems,
    kafka_security_problems,
    settings_problems,
    simulator_image_problems,
    workload_problems,
)
from tests.deploy.test_kubernetes import load_generator
from tests.deploy.tools import (
    COMPOSE_FILE,
    DOCKERFILE,
    HELM_CHART,
    K8S,
    REPO,
    compose_env,
    deploycheck,
    deploycheck_k8s,
    documents,
    env_problems,
    hadolint,
    helm_lint,
    helm_template,
    kustomize_build,
    manifest_env,
    schema_problems,
)


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}: update this broken-copy case"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    """A copy of deploy/k8s."""
    target = tmp_path / "k8s"
    shutil.copytree(K8S, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def build_broken(k8s: Path, file: str, old: str, new: str, overlay: str = "overlays/example"):
    replace(k8s / file, old, new)
    return kustomize_build(k8s / overlay)


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The compose file with everything it mounts and builds, in a tmp dir."""
    target = tmp_path / "repo"
    target.mkdir()
    shutil.copy(COMPOSE_FILE, target / COMPOSE_FILE.name)
    shutil.copy(DOCKERFILE, target / DOCKERFILE.name)
    for folder in ("deploy/compose", "deploy/monitoring"):
        shutil.copytree(REPO / folder, target / folder)
    return target


# --- kustomize ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("overlays/example/kustomization.yaml", "- path: deployment-kafka-ca.yaml",
         "- path: deployment-kafka-ca-missing.yaml", "deployment-kafka-ca-missing.yaml"),
        ("base/kustomization.yaml", "  - service.yaml", "  - service.yaml\n  - nowhere.yaml",
         "nowhere.yaml"),
        ("overlays/example/deployment-kafka-ca.yaml", "  name: meetings-cdc",
         "  name: no-such-deployment", "no-such-deployment"),
    ],
)  # fmt: skip
def test_kustomize_rejects_a_broken_kustomization(k8s_copy, file, old, new, message) -> None:
    with pytest.raises(AssertionError, match=message):
        build_broken(k8s_copy, file, old, new)


# --- kubernetes-validate ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("base/deployment.yaml", "  replicas: 2", "  replicas: one", "is not of type"),
        ("base/deployment.yaml", "          startupProbe:", "          startupprobe:",
         "Additional properties"),
        ("base/service.yaml", "      port: 9400", "      port: nine-four", "is not of type"),
        ("base/networkpolicy.yaml", "  policyTypes:", "  policyTypez:", "Additional properties"),
        ("base/serviceaccount.yaml", "automountServiceAccountToken: false",
         "automountServiceAccountToken: nope", "is not of type"),
    ],
)  # fmt: skip
def test_schema_validation_rejects_a_broken_manifest(k8s_copy, file, old, new, message) -> None:
    problems = schema_problems(documents(build_broken(k8s_copy, file, old, new)))
    assert problems
    assert any(message in p for p in problems), problems


def test_schema_validation_rejects_an_unknown_kind() -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert any("no schema" in p for p in schema_problems([doc]))


# --- deploycheck k8s: operator kinds, Restricted pod security -----------------------------


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("base/servicemonitor.yaml", "      interval: 30s", "      intervall: 30s",
         'unknown field "intervall"'),
        ("base/servicemonitor.yaml", "      interval: 30s", "      interval: [30s]",
         "cannot unmarshal array"),
        ("base/prometheusrule.yaml", "    rules:", "    rulez:", 'unknown field "rulez"'),
    ],
)  # fmt: skip
def test_deploycheck_rejects_broken_operator_kinds(k8s_copy, file, old, new, message) -> None:
    result = deploycheck_k8s(build_broken(k8s_copy, file, old, new))
    assert result.returncode == 1
    assert message in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true",
         "allowPrivilegeEscalation != false"),
        ('drop: ["ALL"]', 'drop: ["NET_RAW"]', "unrestricted capabilities"),
        ("        runAsNonRoot: true\n        runAsUser: 10001",
         "        runAsNonRoot: false\n        runAsUser: 0", "runAsNonRoot"),
        ("type: RuntimeDefault", "type: Unconfined", "seccompProfile"),
        ("      automountServiceAccountToken: false",
         "      automountServiceAccountToken: false\n      hostNetwork: true", "host namespaces"),
    ],
)  # fmt: skip
def test_deploycheck_rejects_pod_security_violations(k8s_copy, old, new, message) -> None:
    result = deploycheck_k8s(build_broken(k8s_copy, "base/deployment.yaml", old, new))
    assert result.returncode == 1
    assert "violates the Restricted pod security standard" in result.stderr
    assert message in result.stderr


# --- structural checks of the workload ----------------------------------------------------


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("base/deployment.yaml", "terminationGracePeriodSeconds: 45",
         "terminationGracePeriodSeconds: 20", "must exceed the shutdown timeout"),
        ("base/kustomization.yaml", "MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS=20",
         "MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS=60", "must exceed the shutdown timeout"),
        ("base/deployment.yaml", "maxUnavailable: 0", "maxUnavailable: 1", "maxUnavailable 0"),
        ("base/deployment.yaml", "  replicas: 2", "  replicas: 1", "at least 2 replicas"),
        ("base/deployment.yaml", "topologyKey: kubernetes.io/hostname",
         "topologyKey: topology.kubernetes.io/zone", "spread over nodes"),
        ("base/deployment.yaml", "            - name: MEETINGS_CDC_INSTANCE_ID\n"
         "              valueFrom:\n                fieldRef:\n"
         "                  fieldPath: metadata.name\n", "", "must be set by default"),
        ("base/deployment.yaml", "              valueFrom:\n                fieldRef:\n"
         "                  fieldPath: metadata.name\n", "              value: meetings-cdc\n",
         "must not be a literal value"),
        ("base/deployment.yaml", "fieldPath: metadata.name", "fieldPath: metadata.namespace",
         "must come from the pod name"),
        ("base/kustomization.yaml", "      - MEETINGS_CDC_SNAPSHOT_MODE",
         "      - MEETINGS_CDC_INSTANCE_ID=meetings-cdc\n      - MEETINGS_CDC_SNAPSHOT_MODE",
         "must not be a literal value (ConfigMap"),
        ("base/deployment.yaml", "path: /readyz", "path: /healthz", "readinessProbe must GET"),
        ("base/deployment.yaml", "failureThreshold: 60", "failureThreshold: 6",
         "state restore needs"),
        ("base/deployment.yaml", "mountPath: /tmp", "mountPath: /scratch", "/tmp must be"),
        ("base/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
         "readOnlyRootFilesystem"),
        ("base/deployment.yaml", "              memory: 512Mi", "", "limits.memory"),
        ("base/service.yaml", "  selector:\n    app.kubernetes.io/instance: meetings-cdc",
         "  selector:\n    app.kubernetes.io/instance: other", "no Service selects"),
        ("base/servicemonitor.yaml", "    - port: metrics", "    - port: http",
         "endpoint port http is unknown"),
        ("base/servicemonitor.yaml", "  jobLabel: meetings-cdc/job\n", "", "sets no jobLabel"),
        ("base/servicemonitor.yaml", "      app.kubernetes.io/instance: meetings-cdc\n", "",
         "must select on app.kubernetes.io/instance"),
        ("base/service.yaml", "    meetings-cdc/job: meetings-cdc", "    meetings-cdc/job: cdc",
         "scrape job 'cdc' does not match"),
        ("overlays/example/networkpolicy-egress.yaml", "        - port: metrics",
         "        - port: 8080", "metrics port only"),
        ("overlays/example/networkpolicy-egress.yaml", "          protocol: UDP",
         "          protocol: SCTP", "DNS"),
        ("base/kustomization.yaml", "  - poddisruptionbudget.yaml\n", "",
         "no PodDisruptionBudget"),
        ("overlays/example/kustomization.yaml", "secretGenerator:\n  - name: meetings-cdc-secrets",
         "secretGenerator:\n  - name: other-secrets", "Secret meetings-cdc-secrets"),
        ("base/kustomization.yaml", "      - MEETINGS_CDC_SNAPSHOT_MODE",
         "      - MEETINGS_CDC_API_KEY=plain\n      - MEETINGS_CDC_SNAPSHOT_MODE",
         "must come from a Secret"),
    ],
)  # fmt: skip
def test_structure_check_rejects_a_broken_workload(k8s_copy, file, old, new, message) -> None:
    problems = workload_problems(
        documents(build_broken(k8s_copy, file, old, new)), require_secret=True
    )
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        # the component's patch misses the entry: the opt-out would keep static membership
        ("components/dynamic-membership/kustomization.yaml",
         "- name: MEETINGS_CDC_INSTANCE_ID", "- name: MEETINGS_CDC_INSTANCE",
         "must not be set with dynamic membership"),
        # one id for every replica from the ConfigMap, which the component does not touch
        ("base/kustomization.yaml", "      - MEETINGS_CDC_SNAPSHOT_MODE",
         "      - MEETINGS_CDC_INSTANCE_ID=meetings-cdc\n      - MEETINGS_CDC_SNAPSHOT_MODE",
         "must not be a literal value (ConfigMap"),
    ],
)  # fmt: skip
def test_structure_check_rejects_an_opt_out_that_keeps_the_instance_id(
    k8s_copy, file, old, new, message
) -> None:
    overlay = k8s_copy / "overlays" / "dynamic"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../../base"],
                "components": ["../../components/dynamic-membership"],
            }
        ),
        encoding="utf-8",
    )
    docs = documents(build_broken(k8s_copy, file, old, new, overlay="overlays/dynamic"))
    problems = workload_problems(docs, require_secret=False, static_membership=False)
    assert any(message in p for p in problems), problems


def test_structure_check_rejects_a_second_instance_id_entry(k8s_copy) -> None:
    """In the base: the example overlay's strategic merge patch would fold the two entries."""
    rendered = build_broken(
        k8s_copy,
        "base/deployment.yaml",
        "          env:\n",
        "          env:\n            - name: MEETINGS_CDC_INSTANCE_ID\n"
        "              valueFrom: {fieldRef: {fieldPath: metadata.name}}\n",
        overlay="base",
    )
    problems = workload_problems(documents(rendered), require_secret=False)
    assert any("set more than once" in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("SECURITY_PROTOCOL=SASL_SSL", "SECURITY_PROTOCOL=SASL_PLAINTEXT", "must be SASL_SSL"),
        ("      - MEETINGS_CDC_KAFKA_SASL_USERNAME=meetings-cdc\n", "", "SASL_USERNAME is not set"),
        ("ca.crt=kafka-ca.crt", "ca.pem=kafka-ca.crt", "is not mounted"),
    ],
)
def test_kafka_security_check_rejects_broken_wiring(k8s_copy, old, new, message) -> None:
    rendered = build_broken(k8s_copy, "overlays/example/kustomization.yaml", old, new)
    problems = kafka_security_problems(documents(rendered))
    assert any(message in p for p in problems), problems


# --- settings: names and values -----------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("MEETINGS_CDC_EVENT_IDS=", "MEETINGS_CDC_EVENTS_IDS=", "MEETINGS_CDC_EVENTS_IDS is not a"),
        ("MEETINGS_CDC_EVENT_IDS=", "MEETING_CDC_EVENT_IDS=", "MEETING_CDC_EVENT_IDS is neither"),
    ],
)
def test_env_check_rejects_unknown_variables_in_manifests(k8s_copy, old, new, message) -> None:
    rendered = build_broken(k8s_copy, "overlays/example/kustomization.yaml", old, new)
    names = set().union(*manifest_env(documents(rendered)).values())
    assert any(message in p for p in env_problems(names, strict_prefix=True))


def test_env_check_rejects_unknown_variables_in_compose(repo_copy) -> None:
    replace(repo_copy / "docker-compose.yml", "MEETINGS_CDC_POLL_INTERVAL_SECONDS:",
            "MEETINGS_CDC_POLL_INTERVAL_SECOND:")  # fmt: skip
    compose = yaml.safe_load((repo_copy / "docker-compose.yml").read_text())
    problems = env_problems(compose_env(compose)["connector"], strict_prefix=True)
    assert problems == ["MEETINGS_CDC_POLL_INTERVAL_SECOND is not a setting the connector reads"]


def test_settings_check_rejects_invalid_values() -> None:
    problems = settings_problems(
        {
            "MEETINGS_CDC_API_BASE_URL": "http://simulator:8080",
            "MEETINGS_CDC_EVENT_IDS": "1",
            "MEETINGS_CDC_SNAPSHOT_MODE": "sometimes",
        }
    )
    assert problems
    assert "MEETINGS_CDC_SNAPSHOT_MODE" in problems[0]


# --- compose: specification, structure ----------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("condition: service_healthy", "condition: service_happy", "must be one of"),
        ("    stop_grace_period: 30s", "    stop_grace_periodd: 30s", "stop_grace_periodd"),
        ("      retries: 12", "      retries: twelve", "twelve"),
        ("      simulator:\n        condition", "      simulatorr:\n        condition",
         "simulatorr"),
        ("name: meetings-cdc\n", "name: meetings-cdc\nservice:\n  x: {}\n", "service"),
    ],
)  # fmt: skip
def test_compose_validator_rejects_a_broken_compose_file(repo_copy, old, new, message) -> None:
    replace(repo_copy / "docker-compose.yml", old, new)
    result = deploycheck("compose", repo_copy / "docker-compose.yml")
    assert result.returncode == 1
    assert message in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("./deploy/monitoring/prometheus/alerts.yml:", "./deploy/monitoring/prometheus/alert.yml:",
         "does not exist"),
        ("      simulator:\n        condition: service_healthy",
         "      simulator:\n        condition: service_started", "simulator to be healthy"),
        ("stop_grace_period: 30s", "stop_grace_period: 10s", "stop_grace_period"),
        ('KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: "1"', 'KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: "2"',
         "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1"),
        ("MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS: kafka:9092",
         "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS: kafka:29092", "not an advertised"),
        ("      - --churn-per-second=5\n", "", "with churn"),
        ('CLUSTER_ID: "bWVldGluZ3MtY2RjLWRlbQ"', 'CLUSTER_ID: "meetings-cdc-demo"', "CLUSTER_ID"),
        ("      KAFKA_LOG_DIRS: /var/lib/kafka/data\n", "", "KAFKA_LOG_DIRS"),
        ('"127.0.0.1:${GRAFANA_PORT:-3000}:3000"', '"${GRAFANA_PORT:-3000}:3000"',
         "beyond 127.0.0.1"),
        ('      GF_AUTH_BASIC_ENABLED: "false"\n',
         '      GF_AUTH_BASIC_ENABLED: "true"\n      GF_SECURITY_ADMIN_PASSWORD: admin\n',
         "grafana admin login"),
        ("GF_AUTH_ANONYMOUS_ORG_ROLE: Viewer", "GF_AUTH_ANONYMOUS_ORG_ROLE: Admin", "Viewers"),
    ],
)  # fmt: skip
def test_compose_structure_check_rejects_a_broken_stack(repo_copy, old, new, message) -> None:
    replace(repo_copy / "docker-compose.yml", old, new)
    compose = yaml.safe_load((repo_copy / "docker-compose.yml").read_text())
    problems = compose_problems(compose, repo_copy)
    assert any(message in p for p in problems), problems


def test_compose_structure_check_rejects_a_dashboard_provider_path_not_mounted(repo_copy) -> None:
    provider = repo_copy / "deploy/monitoring/grafana/provisioning/dashboards/meetings-cdc.yml"
    replace(provider, "path: /var/lib/grafana/dashboards/meetings-cdc", "path: /elsewhere")
    compose = yaml.safe_load((repo_copy / "docker-compose.yml").read_text())
    assert any("/elsewhere" in p for p in compose_problems(compose, repo_copy))


# --- Dockerfile: hadolint and structure ---------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ('ENTRYPOINT ["meetings-cdc"]', "ENTRYPOINT meetings-cdc", "DL3025"),
        ("FROM ${PYTHON_IMAGE}\nARG VERSION", "FROM python:latest\nARG VERSION", "DL3007"),
        ("USER 10001:10001", "USER 10001:10001\nRUN apt-get install -y curl", "DL3008"),
        ("WORKDIR /app", "WORKDIR app", "DL3000"),
    ],
)
def test_hadolint_rejects_a_broken_dockerfile(tmp_path, old, new, rule) -> None:
    broken = tmp_path / "Dockerfile"
    shutil.copy(DOCKERFILE, broken)
    replace(broken, old, new)
    result = hadolint(broken)
    assert result.returncode != 0
    assert rule in result.stdout


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("USER 10001:10001", "USER cdc", "numeric non-root"),
        ("USER 10001:10001", "USER 0", "numeric non-root"),
        ('ENTRYPOINT ["meetings-cdc"]', "ENTRYPOINT meetings-cdc run", "exec form"),
        ('CMD ["run"]', 'CMD ["simulate"]', 'CMD must be ["run"]'),
        ("EXPOSE 9400", "EXPOSE 8080", "EXPOSE 9400"),
        ("USER 10001:10001", "RUN apt-get install -y --no-install-recommends gcc\nUSER 10001",
         "compiler"),
        ("FROM ${PYTHON_IMAGE}\nARG VERSION", "FROM python:3.12\nARG VERSION", "slim Python 3.11"),
        ('org.opencontainers.image.revision="${REVISION}" \\\n', "", "OCI labels missing"),
        ("COPY schemas ./schemas\n", "", "builder must COPY schemas"),
    ],
)  # fmt: skip
def test_dockerfile_structure_check_rejects_a_broken_dockerfile(tmp_path, old, new, message):
    broken = tmp_path / "Dockerfile"
    shutil.copy(DOCKERFILE, broken)
    replace(broken, old, new)
    problems = dockerfile_problems(broken)
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("Dockerfile", "ARG WITH_SIMULATOR=false", "ARG WITH_SIMULATOR=true",
         "ARG WITH_SIMULATOR=false"),
        ("Dockerfile", 'if [ "$WITH_SIMULATOR" = true ]; then', "if true; then",
         "only if WITH_SIMULATOR=true"),
        ("Dockerfile", "--wheel-dir /dist-simulator ./simulator", "--wheel-dir /dist-simulator sim",
         "no RUN installs ./simulator"),
        ("docker-compose.yml", '        WITH_SIMULATOR: "true"', '        WITH_SIMULATOR: "false"',
         "compose simulator must build with WITH_SIMULATOR=true"),
        ("docker-compose.yml", "    image: meetings-cdc:demo\n", "",
         "need two tags"),
        ("docker-compose.yml", "    command: [\"run\"]\n",
         "    command: [\"run\"]\n    build:\n      context: .\n      args:\n"
         "        WITH_SIMULATOR: \"true\"\n", "connector must run the image without"),
    ],
)  # fmt: skip
def test_simulator_image_check_rejects_a_broken_build(repo_copy, file, old, new, message):
    replace(repo_copy / file, old, new)
    compose = yaml.safe_load((repo_copy / "docker-compose.yml").read_text())
    problems = simulator_image_problems(repo_copy / "Dockerfile", compose)
    assert any(message in p for p in problems), problems


# --- PrometheusRule generated from the alert rules ----------------------------------------


def test_prometheusrule_check_detects_changed_alert_rules() -> None:
    generator = load_generator()
    rules = generator.RULES.read_text(encoding="utf-8")
    changed = rules.replace("severity: critical", "severity: page", 1)
    assert changed != rules
    assert generator.render(changed) != generator.OUTPUT.read_text(encoding="utf-8")
    assert generator.main(["--check"]) == 0


# --- commands: the real command line parser -------------------------------------------------


def test_command_check_rejects_a_misspelt_flag(repo_copy) -> None:
    replace(repo_copy / "docker-compose.yml", "--churn-per-second=5", "--churn-per-secnd=5")
    compose = yaml.safe_load((repo_copy / "docker-compose.yml").read_text())
    problems = command_problems(compose["services"]["simulator"]["command"])
    assert problems
    assert "unrecognized arguments: --churn-per-secnd=5" in problems[0]


# --- helm: lint, template, schemas, agreement with the kustomize base ---------------------


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """A copy of deploy/helm/meetings-cdc."""
    target = tmp_path / "meetings-cdc"
    shutil.copytree(HELM_CHART, target)
    return target


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("Chart.yaml", "version: 0.2.0-dev.0", "version: one", "version"),
        ("templates/service.yaml", "  type: ClusterIP", "  type: {{ .Values.nowhere.type }}",
         "nil pointer"),
        ("templates/deployment.yaml", "          args: [\"run\"]", "          args: [\"run\"",
         "deployment.yaml"),
    ],
)  # fmt: skip
def test_helm_lint_rejects_a_broken_chart(chart_copy, file, old, new, message) -> None:
    replace(chart_copy / file, old, new)
    result = helm_lint(chart_copy)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_helm_template_rejects_a_setting_without_the_prefix(chart_copy) -> None:
    with pytest.raises(AssertionError, match=r"settings\.POLL_INTERVAL"):
        helm_template(chart_copy, "--set", "settings.POLL_INTERVAL=5")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("          startupProbe:", "          startupprobe:", "Additional properties"),
        ("      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}",
         "      terminationGracePeriodSeconds: \"{{ .Values.terminationGracePeriodSeconds }}\"",
         "is not of type"),
    ],
)  # fmt: skip
def test_schema_validation_rejects_a_broken_chart(chart_copy, old, new, message) -> None:
    replace(chart_copy / "templates/deployment.yaml", old, new)
    problems = schema_problems(documents(helm_template(chart_copy)))
    assert any(message in p for p in problems), problems


def test_deploycheck_rejects_a_chart_breaking_pod_security(chart_copy) -> None:
    replace(
        chart_copy / "values.yaml",
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    )
    result = deploycheck_k8s(helm_template(chart_copy))
    assert result.returncode == 1
    assert "allowPrivilegeEscalation != false" in result.stderr


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("values.yaml", "  periodSeconds: 15", "  periodSeconds: 20"),
        ("templates/deployment.yaml", "              mountPath: /tmp",
         "              mountPath: /var/tmp"),
        ("values.yaml", "  MEETINGS_CDC_LOG_LEVEL: INFO", "  MEETINGS_CDC_LOG_LEVEL: DEBUG"),
        ("values.yaml", "    memory: 512Mi", "    memory: 1Gi"),
        ("templates/networkpolicy.yaml", "        - port: 53\n          protocol: TCP\n", ""),
        ("files/alerts.yml", "for: 2m", "for: 3m"),
        ("values.yaml", "staticMembership: true", "staticMembership: false"),
    ],
)  # fmt: skip
def test_agreement_check_rejects_a_chart_drifting_from_the_base(
    chart_copy, rendered_docs, file, old, new
) -> None:
    from tests.deploy.test_helm import _comparable

    replace(chart_copy / file, old, new)
    helm = _comparable(documents(helm_template(chart_copy)))
    base = _comparable(rendered_docs["base"])
    assert sorted(helm) == sorted(base)
    assert [key for key in base if helm[key] != base[key]]
