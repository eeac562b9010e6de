"""Operator mistakes in the configuration, found before any setting is used (pure).

The names of the variables (``MEETINGS_CDC_<FIELD>``); unknown variables and config-file
keys, with the closest valid name; secrets left at a template's placeholder; pydantic's
validation errors said as ``VARIABLE: problem``. Values of secrets never appear in a
message.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

ENV_PREFIX = "MEETINGS_CDC_"
CONFIG_FILE_VARIABLE = f"{ENV_PREFIX}CONFIG_FILE"


def env_name(field: str) -> str:
    """Return the environment variable that sets ``field``."""
    return f"{ENV_PREFIX}{field.upper()}"


def looks_secret(key: str) -> bool:
    """Whether a Kafka property named ``key`` holds a secret."""
    return any(word in key.lower() for word in ("password", "secret", "token", "key"))


def describe(error: Mapping[str, Any]) -> str:
    """One validation error of pydantic as ``VARIABLE: what is wrong``."""
    loc = [str(part) for part in error.get("loc", ())]
    name = env_name(loc[0]) if loc else "configuration"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "missing":
        message = "required but not set"
    return f"{name}: {message}"


#: ``MEETINGS_CDC_*`` variables read by other parts of the project, not settings.
OTHER_VARIABLES = frozenset(
    {
        CONFIG_FILE_VARIABLE,
        f"{ENV_PREFIX}SCHEMAS_DIR",
        f"{ENV_PREFIX}CACHE",
        f"{ENV_PREFIX}TOOLS_DIR",
    }
)
#: Prefixes reserved for the test suite, chaos runs and benchmarks (never settings).
TOOLING_PREFIXES = tuple(f"{ENV_PREFIX}{p}_" for p in ("TEST", "CHAOS", "BENCH"))


def closest_name(name: str, known: set[str] | frozenset[str]) -> str | None:
    """The known name most like ``name`` (a typo's likely intent), or None."""
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _did_you_mean(name: str, known: set[str] | frozenset[str]) -> str:
    suggestion = closest_name(name, known)
    return f"; did you mean {suggestion}?" if suggestion else ""


def unknown_names(given: list[str], known: set[str] | frozenset[str], *, label: str) -> list[str]:
    """One problem per name of ``given`` not in ``known``, with the closest known name."""
    return [
        f"{label}{name}: unknown setting{_did_you_mean(name, known)}"
        for name in sorted(given)
        if name not in known
    ]


def environment_problems(environ: Mapping[str, str], fields: Iterable[str]) -> list[str]:
    """One problem per ``MEETINGS_CDC_*`` variable of ``environ`` that sets no field."""
    known = {env_name(f) for f in fields} | OTHER_VARIABLES
    given = [
        name.upper()
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and not name.upper().startswith(TOOLING_PREFIXES)
    ]
    return unknown_names(given, known, label="")


def config_file_problems(environ: Mapping[str, str], fields: Iterable[str]) -> list[str]:
    """The config file's problems: missing, unreadable, not TOML, or a key of no field."""
    path = environ.get(CONFIG_FILE_VARIABLE)
    if not path:
        return []
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file)
    except FileNotFoundError:
        return [f"{CONFIG_FILE_VARIABLE}: {path}: no such file"]
    except OSError as exc:
        return [f"{CONFIG_FILE_VARIABLE}: {path}: cannot be read ({exc.strerror})"]
    except tomllib.TOMLDecodeError as exc:
        return [f"{CONFIG_FILE_VARIABLE}: {path}: not valid TOML ({exc})"]
    known = set(fields)
    problems = []
    for key in sorted(table):
        name = key.lower()
        if name in known:
            continue
        if name.upper().startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :] in known:
            hint = f"; write {name[len(ENV_PREFIX) :]} (no prefix in the file)"
        else:
            hint = _did_you_mean(name, known)
        problems.append(f"{CONFIG_FILE_VARIABLE}: {path}: key {key}: unknown setting{hint}")
    return problems


# Values that are obviously a template's stand-in, never a real secret: the example overlay's
# REPLACE-WITH-..., "changeme", "<your key>", an unexpanded ${VAR}, "xxxx", "...".
_PLACEHOLDER = re.compile(
    r"replace[-_ ]?(with|me)|change[-_ ]?me|^<.*>$|^\$\{.*\}$|^x{3,}$|^\.{3,}$|your[-_ ].*here",
    re.IGNORECASE,
)


def placeholder_secrets(settings: BaseModel) -> list[str]:
    """The variables whose secret value is an obvious placeholder (values never shown)."""
    found = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if name == "schema_registry_basic_auth":
                secret = secret.partition(":")[2] or secret
            if _PLACEHOLDER.search(secret.strip()):
                found.append(env_name(name))
    for key, val in getattr(settings, "kafka_properties", ()):
        if looks_secret(key) and _PLACEHOLDER.search(val.strip()):
            found.append(f"{env_name('kafka_properties')} ({key})")
    return found
