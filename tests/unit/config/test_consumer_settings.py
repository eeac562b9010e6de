"""The settings of the consumer's contract (issue 34): defaults of DESIGN.md section 2."""

from __future__ import annotations

import os

import pytest

from connector.config.settings import Settings, load_settings
from connector.errors import ConfigError


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("MEETINGS_CDC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MEETINGS_CDC_API_BASE_URL", "http://127.0.0.1:8080")
    monkeypatch.setenv("MEETINGS_CDC_EVENT_IDS", "1")
    return monkeypatch


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings(Settings)
    assert settings.changes_topic_retention_ms is None  # the broker's default
    assert settings.tombstones_on_delete is False
    assert settings.cloudevents_headers is True


def test_values_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("MEETINGS_CDC_CHANGES_TOPIC_RETENTION_MS", "-1")
    env.setenv("MEETINGS_CDC_TOMBSTONES_ON_DELETE", "true")
    env.setenv("MEETINGS_CDC_CLOUDEVENTS_HEADERS", "false")
    settings = load_settings(Settings)
    assert settings.changes_topic_retention_ms == -1  # forever
    assert settings.tombstones_on_delete is True
    assert settings.cloudevents_headers is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEETINGS_CDC_CHANGES_TOPIC_RETENTION_MS", "-2"),
        ("MEETINGS_CDC_CHANGES_TOPIC_RETENTION_MS", "a week"),
        ("MEETINGS_CDC_TOMBSTONES_ON_DELETE", "sometimes"),
        ("MEETINGS_CDC_CLOUDEVENTS_HEADERS", "maybe"),
    ],
)
def test_a_bad_value_is_named(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(Settings)
    assert name in str(caught.value)
