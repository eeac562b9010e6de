"""Every MEETINGS_CDC_* variable in the manifests and the compose file is a real setting."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.conftest import KUSTOMIZATIONS
from tests.deploy.tools import COMPOSE_FILE, compose_env, env_problems, known_settings, manifest_env

CONNECTOR_IMAGE_SERVICES = {"connector", "simulator"}


def test_known_settings_come_from_the_settings_classes() -> None:
    known = known_settings()
    assert {
        "MEETINGS_CDC_API_BASE_URL",
        "MEETINGS_CDC_API_KEY",
        "MEETINGS_CDC_KAFKA_SASL_PASSWORD",
        "MEETINGS_CDC_SHUTDOWN_TIMEOUT_SECONDS",
        "MEETINGS_CDC_RECONCILE_RATE_LIMIT_PER_SECOND",
        "MEETINGS_CDC_CONFIG_FILE",
    } <= known


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_manifest_variables_are_settings(rendered_docs, name: str) -> None:
    containers = manifest_env(rendered_docs[name])
    assert containers, "no container found"
    for container, names in containers.items():
        assert env_problems(names, strict_prefix=True) == [], container


def test_compose_variables_are_settings() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    for service, names in compose_env(compose).items():
        strict = service in CONNECTOR_IMAGE_SERVICES
        assert env_problems(names, strict_prefix=strict) == [], service
