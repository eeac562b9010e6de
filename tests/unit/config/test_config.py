"""Settings: validation, one-line errors naming the variable, secrets kept out of sight."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from connector.config.problems import CONFIG_FILE_VARIABLE, env_name
from connector.config.settings import ApiSettings, KafkaSettings, Settings, load_settings
from connector.errors import ConfigError

README = Path(__file__).resolve().parents[3] / "README.md"
REQUIRED = {
    "MEETINGS_CDC_API_BASE_URL": "http://127.0.0.1:8080",
    "MEETINGS_CDC_EVENT_IDS": "812, 913",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("MEETINGS_CDC_"):
            monkeypatch.delenv(name)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_defaults_of_the_design_contract(env):
    settings = load_settings(Settings)

    assert settings.event_ids == (812, 913)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.changes_topic == "expo.meetings.changes"
    assert settings.state_topic == "expo.meetings.state"
    assert settings.schema_registry_url is None
    assert settings.poll_interval_seconds == 5
    assert settings.snapshot_mode == "initial"
    assert settings.metrics_port == 9400
    assert settings.connector_name == "meetings-cdc"
    # DESIGN.md section 2 says 3600 (issue 15 asked for daily: the README says when to)
    assert settings.reconcile_interval_seconds == 3600
    assert settings.delete_check_interval_seconds == 60


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_a_bad_delete_check_interval_is_named(env, value):
    env.setenv("MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(Settings)
    assert "MEETINGS_CDC_DELETE_CHECK_INTERVAL_SECONDS" in str(caught.value)


def test_every_problem_is_reported_on_one_line_naming_each_variable(env):
    env.setenv("MEETINGS_CDC_EVENT_IDS", "812,abc")
    env.setenv("MEETINGS_CDC_POLL_INTERVAL_SECONDS", "0")
    env.setenv("MEETINGS_CDC_SNAPSHOT_MODE", "sometimes")

    with pytest.raises(ConfigError) as caught:
        load_settings(Settings)

    message = str(caught.value)
    assert "\n" not in message
    for name in ("EVENT_IDS", "POLL_INTERVAL_SECONDS", "SNAPSHOT_MODE"):
        assert f"MEETINGS_CDC_{name}" in message


def test_missing_required_settings_are_named(env):
    env.delenv("MEETINGS_CDC_API_BASE_URL")

    with pytest.raises(ConfigError, match="MEETINGS_CDC_API_BASE_URL: required"):
        load_settings(Settings)


def test_sasl_needs_its_credentials(env):
    env.setenv("MEETINGS_CDC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")

    with pytest.raises(ConfigError, match="MEETINGS_CDC_KAFKA_SASL_PASSWORD"):
        load_settings(Settings)


def test_secrets_never_appear_in_errors_or_reprs(env):
    env.setenv("MEETINGS_CDC_API_KEY", "api-key-do-not-print")
    env.setenv("MEETINGS_CDC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    env.setenv("MEETINGS_CDC_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    env.setenv("MEETINGS_CDC_KAFKA_SASL_USERNAME", "svc")
    env.setenv("MEETINGS_CDC_KAFKA_SASL_PASSWORD", "sasl-pass-do-not-print")

    settings = load_settings(Settings)

    assert "do-not-print" not in repr(settings)
    assert "do-not-print" not in str(settings.model_dump())
    assert settings.auth_headers() == {"Authorization": "Bearer api-key-do-not-print"}
    assert settings.kafka_client_config()["sasl.password"] == "sasl-pass-do-not-print"
    assert set(settings.secret_values()) == {"api-key-do-not-print", "sasl-pass-do-not-print"}

    env.setenv("MEETINGS_CDC_API_TIMEOUT_SECONDS", "api-key-do-not-print")
    with pytest.raises(ConfigError) as caught:
        load_settings(Settings)
    assert "do-not-print" not in str(caught.value)


def test_kafka_properties_pass_through_to_every_client(env):
    env.setenv("MEETINGS_CDC_KAFKA_PROPERTIES", "socket.keepalive.enable=true, client.rack=a")

    conf = load_settings(KafkaSettings).kafka_client_config()

    assert conf["socket.keepalive.enable"] == "true"
    assert conf["client.rack"] == "a"


def test_environment_wins_over_the_config_file(env, tmp_path):
    config = tmp_path / "connector.toml"
    config.write_text('poll_interval_seconds = 2\nconnector_name = "from-file"\n')
    env.setenv(CONFIG_FILE_VARIABLE, str(config))
    env.setenv("MEETINGS_CDC_CONNECTOR_NAME", "from-env")

    settings = load_settings(Settings)

    assert settings.poll_interval_seconds == 2
    assert settings.connector_name == "from-env"


def test_subcommands_need_only_their_own_settings(env):
    env.delenv("MEETINGS_CDC_API_BASE_URL")
    env.delenv("MEETINGS_CDC_EVENT_IDS")

    assert load_settings(KafkaSettings).changes_topic == "expo.meetings.changes"
    with pytest.raises(ConfigError):
        load_settings(ApiSettings)


def test_readme_documents_every_setting():
    documented = set(re.findall(r"`(MEETINGS_CDC_[A-Z0-9_]+)`", README.read_text()))
    settings = {env_name(name) for name in Settings.model_fields} | {CONFIG_FILE_VARIABLE}

    assert settings - documented == set(), "settings missing from README's Configuration"


def test_a_pass_pace_is_a_non_negative_request_rate(env):
    assert load_settings(Settings).reconcile_rate_limit_per_second == 0
    env.setenv("MEETINGS_CDC_RECONCILE_RATE_LIMIT_PER_SECOND", "-1")
    with pytest.raises(ConfigError, match="MEETINGS_CDC_RECONCILE_RATE_LIMIT_PER_SECOND"):
        load_settings(Settings)
