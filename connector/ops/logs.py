"""Logging: structured JSON lines (or plain text) on stderr, with secrets redacted.

Every record passes a filter that replaces each configured secret value with ``***`` in the
message, its arguments, its ``extra`` fields (nested containers and objects included), its
exception text and its stack, so an API key or SASL password can never reach a log line,
whatever the code logs. :class:`Redactor` is the same redaction for other outputs
(``/status``, error messages).
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Keys of every JSON line; an ``extra`` field of the same name is written as ``extra_<key>``.
_BASE_KEYS = ("ts", "level", "logger", "msg", "exc", "stack")
MASK = "***"


def _variants(secret: str) -> set[str]:
    """The forms a secret takes on the wire: as is, URL-encoded, in a Basic auth header."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    forms.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    forms.add(json.dumps(secret)[1:-1])  # escaped inside a JSON or repr string
    return {f for f in forms if f}


class Redactor:
    """Replaces every secret value (and its encoded forms) with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= _variants(secret)
        # Longest first, so a secret containing another is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``***``."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def value(self, value: object) -> object:
        """A JSON-ready copy of ``value`` with secrets masked in every string inside it."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        return self(str(value))


class RedactingFilter(logging.Filter):
    """Replaces secret values in the message, its arguments and its extra fields."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.redactor = Redactor(secrets)

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``***``."""
        return self.redactor(text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        if not self.redactor:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: keep both parts, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED:
                setattr(record, key, self.redactor.value(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as a JSON line."""
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[f"extra_{key}" if key in _BASE_KEYS else key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = record.stack_info
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> RedactingFilter:
    """Send logs to stderr as JSON (``fmt='json'``) or text, redacting ``secrets``.

    Returns the filter; its ``redactor`` masks the same secrets in other outputs.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    redacting = RedactingFilter(secrets)
    handler.addFilter(redacting)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return redacting
