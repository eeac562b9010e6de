"""JSON logs, and secrets that never reach logs, metrics, /status or error messages."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from connector.config.settings import Settings, load_settings
from connector.errors import ConfigError, FatalSourceError
from connector.ops.health import HealthState
from connector.ops.logs import JsonFormatter, RedactingFilter, Redactor, configure_logging
from connector.ops.metrics import Metrics

API_KEY = "ak-7f3c9e1b-SECRET-api-key"
SASL_PASSWORD = "p@ss w0rd/with+special&chars"
REGISTRY_AUTH = "registry-user:registry-pass-9931"
PROPERTY_SECRET = "ssl-key-password-55aa"
SECRETS = (API_KEY, SASL_PASSWORD, REGISTRY_AUTH, PROPERTY_SECRET)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in {
        "MEETINGS_CDC_API_BASE_URL": "http://127.0.0.1:1",
        "MEETINGS_CDC_EVENT_IDS": "7",
        "MEETINGS_CDC_API_KEY": API_KEY,
        "MEETINGS_CDC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "MEETINGS_CDC_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MEETINGS_CDC_KAFKA_SASL_USERNAME": "connector",
        "MEETINGS_CDC_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "MEETINGS_CDC_SCHEMA_REGISTRY_BASIC_AUTH": REGISTRY_AUTH,
        "MEETINGS_CDC_KAFKA_PROPERTIES": f"ssl.key.password={PROPERTY_SECRET},linger.ms=5",
    }.items():
        monkeypatch.setenv(name, value)
    return load_settings(Settings)


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        for form in (secret, quote(secret, safe="")):
            assert form not in text, f"secret leaked: {form!r} in {text[:2000]!r}"


# --- JSON lines --------------------------------------------------------------------------


def test_json_lines_carry_level_logger_message_and_extras(
    restore_root_logger: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("connector.sync.engine")
    log.info(
        "cycle %s done",
        "incremental",
        extra={"event_id": 7, "window": {"kind": "modified", "start": 1, "end": 2}, "rows": 10},
    )
    log.debug("not shown at INFO")
    [line] = json_lines(capsys.readouterr().err)
    assert line["level"] == "INFO"
    assert line["logger"] == "connector.sync.engine"
    assert line["msg"] == "cycle incremental done"
    assert line["event_id"] == 7
    assert line["window"] == {"kind": "modified", "start": 1, "end": 2}
    assert line["rows"] == 10
    assert isinstance(line["ts"], str)
    assert line["ts"].endswith("Z")


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR"])
def test_level_is_configurable(
    restore_root_logger: None, capsys: pytest.CaptureFixture[str], level: str
) -> None:
    configure_logging(level, "json")
    log = logging.getLogger("connector.test")
    for name in ("DEBUG", "INFO", "WARNING", "ERROR"):
        log.log(logging.getLevelName(name), name)
    shown = [line["level"] for line in json_lines(capsys.readouterr().err)]
    order = ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert shown == order[order.index(level) :]


def test_exceptions_and_stacks_are_in_the_line(
    restore_root_logger: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    try:
        raise ValueError("bad page")
    except ValueError:
        logging.getLogger("x").exception("cycle failed", stack_info=True)
    [line] = json_lines(capsys.readouterr().err)
    assert isinstance(line["exc"], str)
    assert "ValueError: bad page" in line["exc"]
    assert "Stack (most recent call last)" in str(line["stack"])


def test_extras_never_overwrite_the_base_keys() -> None:
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "real", None, None)
    record.msg_extra_probe = 1
    record.__dict__["level"] = "fake"
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "INFO"
    assert line["extra_level"] == "fake"


def test_text_format(restore_root_logger: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text", secrets=[API_KEY])
    logging.getLogger("connector.x").warning("key is %s", API_KEY)
    err = capsys.readouterr().err
    assert "WARNING connector.x: key is ***" in err
    assert API_KEY not in err


def test_bad_format_arguments_do_not_break_the_filter() -> None:
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "%s %s", (API_KEY,), None)
    assert RedactingFilter([API_KEY]).filter(record)
    assert API_KEY not in record.getMessage()


# --- the redactor --------------------------------------------------------------------------


def test_redactor_masks_encoded_forms() -> None:
    import base64

    redact = Redactor([SASL_PASSWORD, "", REGISTRY_AUTH])
    assert redact(f"x {SASL_PASSWORD} y") == "x *** y"
    assert redact(f"url?p={quote(SASL_PASSWORD, safe='')}") == "url?p=***"
    basic = base64.b64encode(REGISTRY_AUTH.encode()).decode()
    assert "***" in redact(f"Authorization: Basic {basic}")
    assert REGISTRY_AUTH not in redact(json.dumps({"auth": REGISTRY_AUTH}))
    assert not Redactor([""])
    assert Redactor(["", None or ""])("unchanged") == "unchanged"


def test_redactor_masks_the_longest_secret_whole() -> None:
    redact = Redactor(["abc", "abcdef"])
    assert redact("abcdef abc") == "*** ***"


def test_redactor_value_handles_nested_and_odd_values() -> None:
    redact = Redactor(["tok"])

    class Obj:
        def __str__(self) -> str:
            return "obj with tok"

    assert redact.value({"tok": ["tok", ("tok",), {1, 2}], "n": 1.5, "b": True, "z": None}) == {
        "***": ["***", ["***"], [1, 2]],
        "n": 1.5,
        "b": True,
        "z": None,
    }
    assert redact.value(Obj()) == "obj with ***"


# --- the end-to-end proof: secrets fed through settings never come out -------------------


def test_secrets_never_reach_logs_metrics_status_or_errors(
    settings: Settings,
    restore_root_logger: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secrets = settings.secret_values()
    assert set(SECRETS) <= set(secrets), "Settings.secret_values() misses a secret"
    # The settings themselves never show a secret.
    assert_no_secret(repr(settings) + str(settings))

    # Logs, JSON and text: message, %-args, extras (nested, objects), exceptions, stacks.
    for fmt in ("json", "text"):
        redacting = configure_logging("DEBUG", fmt, secrets)
        log = logging.getLogger("connector.sync.engine")
        headers = settings.auth_headers()
        kafka = settings.kafka_client_config()
        log.info("calling the API with %s", headers)
        log.debug("kafka config %r", kafka, extra={"config": kafka, "headers": headers})
        log.warning(f"inline {API_KEY} and {SASL_PASSWORD}", extra={"key": API_KEY})
        log.info("url", extra={"url": f"http://api/x?key={quote(API_KEY, safe='')}"})
        try:
            try:
                raise OSError(f"SASL authentication failed for password {SASL_PASSWORD}")
            except OSError as exc:
                raise FatalSourceError(f"401 with key {API_KEY}") from exc
        except FatalSourceError as error:
            log.exception("cycle failed: %s", error, extra={"error": error}, stack_info=True)
            log.error("again", exc_info=(type(error), error, error.__traceback__))
        err = capsys.readouterr().err
        assert "calling the API" in err
        assert "***" in err
        assert_no_secret(err)
        if fmt == "json":
            assert len(json_lines(err)) == 6

    # Metrics output: no label or value ever carries a secret.
    metrics = Metrics(CollectorRegistry())
    metrics.prime(settings.event_ids, poll_interval_seconds=5, now=0)
    assert_no_secret(generate_latest(metrics.registry).decode())

    # /status: error texts and details pass through the same redaction.
    health = HealthState(
        settings.event_ids,
        poll_interval_seconds=settings.poll_interval_seconds,
        redact=redacting.redactor,
        info={"api_base_url": settings.api_base_url},
    )
    health.cycle_finished(
        7,
        phase="incremental",
        ok=False,
        detail={
            "error": FatalSourceError(f"401 Unauthorized for key {API_KEY}"),
            "kafka": settings.kafka_client_config(),
            "headers": settings.auth_headers(),
        },
    )
    status = json.dumps(health.status())
    assert "***" in status
    assert_no_secret(status)

    # Error messages of configuration problems never echo a value.
    assert_no_secret(str(_config_error(settings)))


def _config_error(settings: Settings) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            Settings,
            kafka_properties=f"ssl.key.password={PROPERTY_SECRET},broken",
            poll_interval_seconds=f"{API_KEY}",
            api_base_url=f"ftp://{SASL_PASSWORD}@host",
            schema_registry_basic_auth=12,
        )
    message = str(caught.value)
    for name in ("POLL_INTERVAL_SECONDS", "KAFKA_PROPERTIES", "API_BASE_URL"):
        assert f"MEETINGS_CDC_{name}" in message
    return caught.value


def test_configure_logging_writes_to_the_current_stderr(
    restore_root_logger: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is sys.stderr
