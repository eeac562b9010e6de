"""What an export API failure says: error text from a response, redacted and cut short,
the message of a rejected request (naming the setting to check) and ``Retry-After``.

Pure functions: ``connector.source.client`` hands them the response and the secrets
(the API key) that must never appear in what they return.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime

from connector.config.problems import env_name

EXPORT_PATH = "/api/v2/meetings/export"
#: Characters of the API's error text kept in a message.
ERROR_TEXT_LIMIT = 300


def redact(value: object, secrets: Iterable[str]) -> str:
    """``value`` as text with every secret replaced by ``***``."""
    text = str(value)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def error_text(body: bytes, secrets: Iterable[str]) -> str:
    """The API's own words from an error body (its ``error``, ``message`` or ``detail``
    when it is JSON), on one line, redacted, at most ``ERROR_TEXT_LIMIT`` characters."""
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError):
        payload = json.loads(text)
        if isinstance(payload, dict):
            for key in ("error", "message", "detail"):
                if key in payload:
                    found = payload[key]
                    text = found if isinstance(found, str) else json.dumps(found)
                    break
    text = redact(" ".join(text.split()), secrets)
    if len(text) > ERROR_TEXT_LIMIT:
        text = text[: ERROR_TEXT_LIMIT - 3] + "..."
    return text or "(empty body)"


def rejection_message(
    status: int, params: Mapping[str, str], body: bytes, secrets: Iterable[str]
) -> str:
    """The message of a request the API rejected for good, with the settings to check."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    message = f"export API rejected GET {EXPORT_PATH}?{query}: HTTP {status}: "
    message += error_text(body, secrets)
    if status in (401, 403):
        message += (
            f" - check {env_name('api_key')} (and {env_name('api_auth_header')} / "
            f"{env_name('api_auth_scheme')} if the API expects another header)"
        )
    elif status == 404:
        message += f" - check {env_name('api_base_url')} and the event id"
    return message


def retry_after_seconds(header: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP-date; None if absent."""
    if not header:
        return None
    text = header.strip()
    with contextlib.suppress(ValueError):
        return max(0.0, float(text))
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
