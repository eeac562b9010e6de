"""MEETINGS_CDC_FIELD_RULES and MEETINGS_CDC_FIELD_HASH_KEY: the variable, the TOML table,
one-line refusals with the closest valid name, and the key kept secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connector.config.problems import CONFIG_FILE_VARIABLE
from connector.config.settings import ApiSettings, Settings, load_settings
from connector.core.masking import Masker, parse_rules
from connector.errors import ConfigError

KEY = "s3cr3t-hash-key-of-32-characters"
RULES = "participant.email=hash, participant.last_name=redact,notes=drop"
CANONICAL = "notes=drop,participant.email=hash,participant.last_name=redact"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("MEETINGS_CDC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MEETINGS_CDC_API_BASE_URL", "http://127.0.0.1:8080")
    monkeypatch.setenv("MEETINGS_CDC_EVENT_IDS", "812")
    return monkeypatch


def _refusal(cls: type[ApiSettings] = Settings) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(cls)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_unset_masks_nothing(env: pytest.MonkeyPatch) -> None:
    settings = load_settings(Settings)
    assert not settings.field_rules
    assert not settings.masker()
    assert settings.masker().key_check is None


def test_rules_from_the_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("MEETINGS_CDC_FIELD_RULES", RULES)
    env.setenv("MEETINGS_CDC_FIELD_HASH_KEY", KEY)
    for cls in (Settings, ApiSettings):  # export parses rows too
        settings = load_settings(cls)
        assert settings.field_rules.text == CANONICAL
        masker = settings.masker()
        assert masker.hash("a@b") == Masker(parse_rules(RULES.split(",")), KEY.encode()).hash("a@b")
        assert KEY not in repr(settings) + repr(masker) + str(settings.model_dump())
        assert KEY in settings.secret_values()  # so the log redactor hides it


def test_rules_from_a_toml_table(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "connector.toml"
    config.write_text(
        '[field_rules]\nnotes = "drop"\nparticipant.email = "hash"\n'
        '"participant.last_name" = "redact"\n'
    )
    env.setenv(CONFIG_FILE_VARIABLE, str(config))
    env.setenv("MEETINGS_CDC_FIELD_HASH_KEY", KEY)
    assert load_settings(Settings).field_rules.text == CANONICAL
    env.setenv("MEETINGS_CDC_FIELD_RULES", "notes=redact")  # the environment wins
    assert load_settings(Settings).field_rules.text == "notes=redact"


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        (
            "participant.emial=hash",
            "MEETINGS_CDC_FIELD_RULES: rule 'participant.emial=hash': unknown field "
            "participant.emial; did you mean participant.email?",
        ),
        (
            "email=hash",
            "MEETINGS_CDC_FIELD_RULES: rule 'email=hash': unknown field email; "
            "did you mean participant.email?",
        ),
        ("nots=drop", "rule 'nots=drop': unknown field nots; did you mean notes?"),
        ("notes=encrypt", "rule 'notes=encrypt': unknown action 'encrypt': use hash, redact"),
        ("status=drop", "rule 'status=drop': status cannot be masked: it decides the change"),
        ("location=drop", "rule 'location=drop': location is a field of the Meeting schema"),
    ],
)
def test_a_bad_rule_is_named_with_the_closest_valid_name(
    env: pytest.MonkeyPatch, rules: str, says: str
) -> None:
    env.setenv("MEETINGS_CDC_FIELD_RULES", rules)
    env.setenv("MEETINGS_CDC_FIELD_HASH_KEY", KEY)
    assert says in _refusal()


def test_hash_without_a_key_is_refused_naming_the_rule(env: pytest.MonkeyPatch) -> None:
    env.setenv("MEETINGS_CDC_FIELD_RULES", RULES)
    assert _refusal(ApiSettings) == (
        "configuration error: MEETINGS_CDC_FIELD_HASH_KEY: required by "
        "MEETINGS_CDC_FIELD_RULES rule participant.email=hash"
    )
    env.setenv("MEETINGS_CDC_FIELD_RULES", "notes=drop")  # no hash: no key needed
    assert load_settings(Settings).masker().key_check is None


@pytest.mark.parametrize("key", ["REPLACE-WITH-a-random-key", "${FIELD_HASH_KEY}", "k3y"])
def test_a_placeholder_or_short_key_is_refused_without_showing_it(
    env: pytest.MonkeyPatch, key: str
) -> None:
    env.setenv("MEETINGS_CDC_FIELD_RULES", RULES)
    env.setenv("MEETINGS_CDC_FIELD_HASH_KEY", key)
    message = _refusal()
    assert "MEETINGS_CDC_FIELD_HASH_KEY: " in message
    assert key not in message
