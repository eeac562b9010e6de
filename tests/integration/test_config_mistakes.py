"""Configuration mistakes stop ``meetings-cdc run`` with exit 2 and one line naming them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.config.problems import closest_name, placeholder_secrets
from connector.config.settings import ApiSettings


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    base.update(
        {
            "MEETINGS_CDC_API_BASE_URL": "http://127.0.0.1:1",
            "MEETINGS_CDC_EVENT_IDS": "1",
            "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "MEETINGS_CDC_METRICS_PORT": "0",
            "MEETINGS_CDC_TEST_ANYTHING": "tooling variables are not settings",
        }
    )
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "connector", "run"],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    line = _one_line(_run(tmp_path, MEETINGS_CDC_CONFIG_FILE=str(missing)))
    assert "MEETINGS_CDC_CONFIG_FILE" in line
    assert str(missing) in line


def test_invalid_toml_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("poll_interval_seconds = = 2\n")
    line = _one_line(_run(tmp_path, MEETINGS_CDC_CONFIG_FILE=str(bad)))
    assert "MEETINGS_CDC_CONFIG_FILE" in line
    assert "not valid TOML" in line


def test_unknown_names_are_all_reported_with_the_closest_valid_one(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("poll_intervall_seconds = 2\nMEETINGS_CDC_SETTLE_SECONDS = 1\n")
    line = _one_line(
        _run(tmp_path, MEETINGS_CDC_CONFIG_FILE=str(config), MEETINGS_CDC_POLL_INTERVAL="2")
    )
    assert "poll_intervall_seconds: unknown setting; did you mean poll_interval_seconds?" in line
    assert "MEETINGS_CDC_SETTLE_SECONDS: unknown setting; write settle_seconds" in line
    assert "MEETINGS_CDC_POLL_INTERVAL: unknown setting; did you mean " in line
    assert "MEETINGS_CDC_POLL_INTERVAL_SECONDS?" in line
    assert "MEETINGS_CDC_TEST_ANYTHING" not in line


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("MEETINGS_CDC_POLL_INTERVAL", "MEETINGS_CDC_POLL_INTERVAL_SECONDS"),
        ("MEETINGS_CDC_EVENTS_IDS", "MEETINGS_CDC_EVENT_IDS"),
        ("MEETINGS_CDC_API_BASEURL", "MEETINGS_CDC_API_BASE_URL"),
    ],
)
def test_closest_name(typo: str, meant: str) -> None:
    known = {
        "MEETINGS_CDC_POLL_INTERVAL_SECONDS",
        "MEETINGS_CDC_EVENT_IDS",
        "MEETINGS_CDC_API_BASE_URL",
        "MEETINGS_CDC_API_KEY",
    }
    assert closest_name(typo, known) == meant


def test_no_suggestion_for_a_name_like_nothing() -> None:
    assert closest_name("QQQQ", {"MEETINGS_CDC_API_KEY"}) is None


def test_metrics_port_in_use_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _run(
            tmp_path,
            MEETINGS_CDC_METRICS_HOST="127.0.0.1",
            MEETINGS_CDC_METRICS_PORT=str(port),
        )
    line = _one_line(result)
    assert f"MEETINGS_CDC_METRICS_PORT={port}" in line
    assert "MEETINGS_CDC_METRICS_HOST=127.0.0.1" in line
    assert "Traceback" not in result.stderr


def test_placeholder_secrets_are_refused_without_printing_them(tmp_path: Path) -> None:
    # The values of deploy/k8s/overlays/example/secrets.env.example.
    result = _run(
        tmp_path,
        MEETINGS_CDC_API_KEY="REPLACE-WITH-THE-EXPOPLATFORM-API-KEY",
        MEETINGS_CDC_SCHEMA_REGISTRY_BASIC_AUTH="meetings-cdc:REPLACE-WITH-THE-REGISTRY-PASSWORD",
    )
    line = _one_line(result)
    assert "MEETINGS_CDC_API_KEY: is a placeholder" in line
    assert "MEETINGS_CDC_SCHEMA_REGISTRY_BASIC_AUTH: is a placeholder" in line
    assert "REPLACE-WITH" not in result.stderr


@pytest.mark.parametrize(
    "value", ["REPLACE-WITH-KEY", "changeme", "<your api key>", "${API_KEY}", "xxxxxxxx", "..."]
)
def test_placeholders_are_recognised(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEETINGS_CDC_API_KEY", value)
    settings = ApiSettings(api_base_url="http://x", event_ids=(1,))
    assert placeholder_secrets(settings) == ["MEETINGS_CDC_API_KEY"]


@pytest.mark.parametrize(
    "value", ["demo-key-any-value-works-with-the-simulator", "ak-7f3c9e1b-SECRET", "x", "p@ss"]
)
def test_real_looking_secrets_pass(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEETINGS_CDC_API_KEY", value)
    settings = ApiSettings(api_base_url="http://x", event_ids=(1,))
    assert placeholder_secrets(settings) == []


def test_unreachable_broker_is_named_within_15s_without_raw_librdkafka_lines(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    address = f"127.0.0.1:{port}"
    started = time.monotonic()
    result = _run(
        tmp_path, MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS=address, MEETINGS_CDC_METRICS_PORT="0"
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed < 15, elapsed
    assert "%3|" not in result.stderr
    named = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("{") and "MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS" in line
    ]
    assert len(named) == 1, result.stderr
    assert f"{address}: Connect to ipv4#{address} failed: Connection refused" in named[0]


def test_a_state_topic_that_deletes_is_refused_naming_its_policy_and_the_fix(
    tmp_path: Path, kafka_bootstrap: str, topic_factory
) -> None:
    state = topic_factory("state.compact-delete", config={"cleanup.policy": "compact,delete"})
    result = _run(
        tmp_path,
        MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        MEETINGS_CDC_STATE_TOPIC=state,
        MEETINGS_CDC_CHANGES_TOPIC=topic_factory("changes"),
        MEETINGS_CDC_DLQ_TOPIC=topic_factory("dlq"),
    )
    line = _one_line(result)
    assert line.startswith("meetings-cdc run: MEETINGS_CDC_STATE_TOPIC: "), line
    assert f"topic {state} has cleanup.policy=compact,delete" in line
    assert f"--entity-name {state} --add-config cleanup.policy=compact" in line
