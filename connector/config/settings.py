"""Settings: environment variables ``MEETINGS_CDC_*``, optionally a TOML file beneath them.

Every setting is documented in README.md ("Configuration"). Environment variables win over
the file named by ``MEETINGS_CDC_CONFIG_FILE`` (keys are the variable names without the
prefix, lower case: ``poll_interval_seconds = 2``). Validation reports every problem at once,
on one line, naming each variable; secret values never appear in messages or reprs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from connector.config.problems import (
    CONFIG_FILE_VARIABLE,
    ENV_PREFIX,
    closest_name,
    config_file_problems,
    describe,
    env_name,
    environment_problems,
    looks_secret,
    placeholder_secrets,
)
from connector.core.masking import (
    PARTICIPANT_PREFIX,
    VALID_NAMES,
    Action,
    FieldRules,
    Masker,
    RuleError,
    parse_rules,
)
from connector.errors import ConfigError
from connector.ops.librdkafka_logs import kafka_logger

SnapshotMode = Literal["initial", "no_data", "never"]
CreatedWindows = Literal["auto", "always", "never"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
#: The shortest hash key taken: 128 bits, if random.
_MIN_HASH_KEY_BYTES = 16


class _Base(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    log_level: LogLevel = "INFO"
    log_format: Literal["json", "text"] = "json"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    def secret_values(self) -> list[str]:
        """Every secret value held by these settings, for redaction filters."""
        values: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                values.append(value.get_secret_value())
        for key, val in getattr(self, "kafka_properties", ()):
            if looks_secret(key):
                values.append(val)
        return [v for v in values if v]


class ApiSettings(_Base):
    """Settings of the upstream export API client (``export`` and ``run``)."""

    api_base_url: str = Field(description="Base URL of the ExpoPlatform API.")
    api_key: SecretStr | None = Field(default=None, description="API key or token.")
    api_auth_header: str = Field(
        default="Authorization", description="HTTP header that carries the API key."
    )
    api_auth_scheme: str = Field(
        default="Bearer",
        description="Prefix of the header value before the key; empty sends the bare key.",
    )
    event_ids: Annotated[tuple[int, ...], NoDecode] = Field(
        description="Comma-separated ExpoPlatform event ids to sync."
    )
    api_timezone: str = Field(
        default="UTC", description="IANA time zone of the date-times in export rows."
    )
    api_per_page: int = Field(default=500, ge=1, le=500, description="Rows per export page.")
    api_timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    api_max_retries: int = Field(
        default=8, ge=0, description="Retries of a transient API failure before the cycle fails."
    )
    api_backoff_initial_seconds: float = Field(default=0.5, gt=0)
    api_backoff_max_seconds: float = Field(default=30.0, gt=0)
    api_rate_limit_per_second: float = Field(
        default=20.0, ge=0, description="Client-side request rate shared by all events; 0 = off."
    )
    api_max_concurrency: int = Field(
        default=4, ge=1, description="Requests in flight at once, all events together."
    )
    reconcile_rate_limit_per_second: float = Field(
        default=0.0,
        ge=0,
        description="Requests per second of reconcile passes, all events together (within "
        "the API rate limit); 0 = only the API rate limit.",
    )
    field_rules: Annotated[FieldRules, NoDecode] = Field(
        default=FieldRules(),
        description="Personal data masked as rows are parsed: FIELD=hash|redact|drop, "
        "comma-separated; participant.email names a participant field.",
    )
    field_hash_key: SecretStr | None = Field(
        default=None,
        validate_default=True,  # unset is an error when a rule hashes
        description="HMAC-SHA-256 key of the hash rules (a secret).",
    )

    @field_validator("field_rules", mode="before")
    @classmethod
    def _parse_field_rules(cls, value: Any) -> Any:
        if isinstance(value, FieldRules):
            return value
        if isinstance(value, str):
            items: list[Any] = [p for p in value.split(",") if p.strip()]
        elif isinstance(value, Mapping):  # a TOML table: notes = "drop", participant.email...
            items = list(_flatten_rules(value))
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ValueError("must be FIELD=ACTION rules, comma-separated")
        try:
            return parse_rules(items)
        except RuleError as exc:
            raise ValueError(f"{exc}{_did_you_mean(exc)}") from None

    @field_validator("field_hash_key")
    @classmethod
    def _check_hash_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        rules = info.data.get("field_rules")
        if value is None and isinstance(rules, FieldRules) and rules.needs_key:
            hashed = ",".join(r.text for r in rules.rules if r.action is Action.HASH)
            raise ValueError(f"required by {env_name('field_rules')} rule {hashed}")
        if value is not None and len(value.get_secret_value().encode()) < _MIN_HASH_KEY_BYTES:
            raise ValueError(
                f"must be at least {_MIN_HASH_KEY_BYTES} bytes (a short key lets anyone who "
                "sees a hash try keys)"
            )
        return value

    def masker(self) -> Masker:
        """The field rules with their key, as the row parser applies them (holds the key)."""
        key = self.field_hash_key.get_secret_value().encode() if self.field_hash_key else None
        return Masker(self.field_rules, key if self.field_rules.needs_key else None)

    @field_validator("event_ids", mode="before")
    @classmethod
    def _split_event_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return tuple(int(p) for p in parts)
            except ValueError:
                raise ValueError("must be comma-separated integers") from None
        if isinstance(value, int):
            return (value,)
        return value

    @field_validator("event_ids")
    @classmethod
    def _check_event_ids(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("must name at least one event id")
        if any(v <= 0 for v in value):
            raise ValueError("event ids must be positive")
        return tuple(dict.fromkeys(value))

    @field_validator("api_base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("api_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA time zone") from None
        return value

    @model_validator(mode="after")
    def _check_backoff(self) -> ApiSettings:
        if self.api_backoff_max_seconds < self.api_backoff_initial_seconds:
            raise ValueError(
                f"{env_name('api_backoff_max_seconds')} must be >= "
                f"{env_name('api_backoff_initial_seconds')}"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The time zone of upstream date-times."""
        return ZoneInfo(self.api_timezone)

    def auth_headers(self) -> dict[str, str]:
        """HTTP headers that authenticate against the API (contain the secret)."""
        if self.api_key is None:
            return {}
        key = self.api_key.get_secret_value()
        scheme = self.api_auth_scheme.strip()
        return {self.api_auth_header: f"{scheme} {key}" if scheme else key}


class KafkaSettings(_Base):
    """Settings of the Kafka side (``run`` and ``tail``)."""

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:19092")
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_properties: Annotated[tuple[tuple[str, str], ...], NoDecode] = Field(
        default=(),
        repr=False,  # may hold secrets (ssl.key.password, sasl.oauthbearer...)
        description="Extra librdkafka properties for every client: 'k=v,k2=v2'.",
    )
    changes_topic: str = "expo.meetings.changes"
    state_topic: str = "expo.meetings.state"
    dlq_topic: str = "expo.meetings.dlq"
    #: operators' commands (``meetings-cdc signal``): who may write here may steer the connector
    signals_topic: str = "expo.meetings.signals"
    notifications_topic: str = "expo.meetings.notifications"
    heartbeats_topic: str = "expo.meetings.heartbeats"
    changes_topic_partitions: int = Field(default=6, ge=1)
    changes_topic_retention_ms: int | None = Field(
        default=None,
        ge=-1,
        description="retention.ms of a changes topic the connector creates (-1: forever); "
        "unset = the broker's default. An existing topic is left as it is.",
    )
    state_topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int | None = Field(
        default=None, ge=1, description="Replication factor of created topics; unset = broker's."
    )
    schema_registry_url: str | None = None
    schema_registry_basic_auth: SecretStr | None = Field(
        default=None, description="'user:password' for the schema registry."
    )
    transaction_timeout_ms: int = Field(default=60_000, ge=1_000)

    @field_validator("kafka_properties", mode="before")
    @classmethod
    def _split_properties(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = []
            for item in (p.strip() for p in value.split(",")):
                if not item:
                    continue
                key, sep, val = item.partition("=")
                if not sep or not key.strip():
                    raise ValueError("must be 'key=value' pairs separated by commas")
                pairs.append((key.strip(), val.strip()))
            return tuple(pairs)
        if isinstance(value, Mapping):
            return tuple((str(k), str(v)) for k, v in value.items())
        return value

    @model_validator(mode="after")
    def _check_sasl(self) -> KafkaSettings:
        if self.kafka_security_protocol.startswith("SASL_"):
            missing = [
                env_name(n)
                for n in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                if getattr(self, n) is None
            ]
            if missing:
                raise ValueError(
                    f"{env_name('kafka_security_protocol')}={self.kafka_security_protocol} "
                    "needs " + ", ".join(missing)
                )
        return self

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka properties shared by every Kafka client (contain secrets).

        ``logger`` routes librdkafka's log lines through ours (JSON, redacted, throttled)
        instead of raw lines on stderr.
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
            "logger": kafka_logger(),
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_ca_location:
            conf["ssl.ca.location"] = self.kafka_ssl_ca_location
        conf.update(dict(self.kafka_properties))
        return conf


class Settings(ApiSettings, KafkaSettings):
    """All settings of ``meetings-cdc run``."""

    # --- sync behaviour --------------------------------------------------------------
    connector_name: str = "meetings-cdc"
    poll_interval_seconds: float = Field(default=5.0, gt=0)
    settle_seconds: int = Field(
        default=2, ge=0, description="Window upper bound stays this far behind the API's now."
    )
    overlap_seconds: int = Field(
        default=5, ge=0, description="Each incremental window re-reads this much of the last."
    )
    snapshot_mode: SnapshotMode = "initial"
    reconcile_interval_seconds: float = Field(
        default=3600.0, ge=0, description="Seconds between full reconciliations; 0 = never."
    )
    shutdown_timeout_seconds: float = Field(default=20.0, gt=0)
    instance_id: str | None = Field(
        default=None,
        description="Static group membership (group.instance.id), e.g. the pod name.",
    )
    group_session_timeout_ms: int = Field(
        default=10_000,
        ge=6_000,  # the broker's default group.min.session.timeout.ms
        le=300_000,
        description="How long the group waits for a silent replica before moving its events.",
    )
    created_windows: CreatedWindows = Field(
        default="auto",
        description="Whether incremental cycles read created windows besides last-modified "
        "ones: auto (until new meetings are proven to show in last-modified windows), "
        "always, never (the API stamps last-modified at creation).",
    )
    tombstones_on_delete: bool = Field(
        default=False,
        description="A null-value record on the changes topic after each DELETED (same "
        "key, partition and transaction), for consumers that compact.",
    )
    cloudevents_headers: bool = Field(
        default=True,
        description="CloudEvents headers (Kafka binding, binary mode) on every change event.",
    )
    delete_check_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Seconds between delete checks (row counts by creation time); 0 = off.",
    )
    heartbeat_interval_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Seconds between an owned event's heartbeat records; 0 = off.",
    )

    metrics_host: str = "0.0.0.0"  # noqa: S104 - a container must be scrapeable
    metrics_port: int = Field(default=9400, ge=0, le=65535)

    @field_validator("instance_id")
    @classmethod
    def _check_instance_id(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_PATTERN.match(value):
            raise ValueError("must be 1-200 characters of letters, digits, '.', '_' or '-'")
        return value or None

    @field_validator("connector_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_PATTERN.match(value):
            raise ValueError("must be 1-200 characters of letters, digits, '.', '_' or '-'")
        return value


S = TypeVar("S", bound="_Base")


def _did_you_mean(error: RuleError) -> str:
    """The closest valid field name to a rule's unknown one (``email``: the participant's)."""
    if error.unknown is None:
        return ""
    prefixed = PARTICIPANT_PREFIX + error.unknown
    suggestion = prefixed if prefixed in VALID_NAMES else closest_name(error.unknown, VALID_NAMES)
    return f"; did you mean {suggestion}?" if suggestion else ""


def _flatten_rules(table: Mapping[Any, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A TOML table of rules as (field, action) pairs: ``participant.email = "hash"`` is a
    nested table in TOML."""
    pairs: list[tuple[str, str]] = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            pairs.extend(_flatten_rules(value, f"{name}."))
        else:
            pairs.append((name, str(value)))
    return pairs


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Load and validate settings; raise ``ConfigError`` naming every bad variable.

    Unknown ``MEETINGS_CDC_*`` variables and unknown keys of the config file are errors too
    (a typo must not leave the connector on defaults), as is a config file that is missing
    or not valid TOML. Every problem is reported at once.
    """
    fields = list(Settings.model_fields)
    problems = config_file_problems(os.environ, fields) + environment_problems(os.environ, fields)
    if problems:
        raise ConfigError(f"configuration error: {'; '.join(problems)}")
    try:
        settings = cls(**overrides)
    except ValidationError as exc:
        problems = [describe(e) for e in exc.errors()]
        raise ConfigError(f"configuration error: {'; '.join(problems)}") from None
    except (OSError, ValueError) as exc:  # unreadable or invalid TOML config file
        raise ConfigError(f"configuration error: {CONFIG_FILE_VARIABLE}: {exc}") from None
    placeholders = placeholder_secrets(settings)
    if placeholders:
        raise ConfigError(
            "configuration error: "
            + "; ".join(f"{n}: is a placeholder, not a real secret" for n in placeholders)
        )
    return settings
