"""Date-time fields of rows in the API's time zone -> UTC epoch milliseconds (cached).

Accepted: ``YYYY-MM-DD HH:MM:SS`` in the API's zone, ISO 8601 (with or without an offset;
without one it is local to the zone) or integer unix seconds. A local time that a
daylight-saving fall-back repeats names two instants; :class:`DateTimes` keeps both and
resolves them per row, by the window the row was read for and the order of the row's times
(:mod:`connector.source.local_time`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

from connector.core.kinds import WindowKind
from connector.source.local_time import Bounds, instants, resolve_interval, within
from connector.source.row_fields import FieldError, show
from connector.source.windows import Window

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_DATE_TIME_HINT = "a date-time 'YYYY-MM-DD HH:MM:SS', ISO 8601 or integer unix seconds"
_CACHE_LIMIT = 200_000
#: Distinct days kept for date-time parsing.
_DAY_LIMIT = 4_096
#: Distinct repeated local times kept (one fall-back hour is 3,600 texts).
_FOLD_LIMIT = 16_384


class DateTimes:
    """Parses the date-times of one time zone, caching parsed texts.

    Texts that name one instant are cached with it (``times``); texts of a repeated local
    hour are cached with both of their instants (``folds``) and resolved per row by
    :meth:`resolve`: the same text is a different instant in another context. Both caches
    are only ever cleared, never replaced, so a caller may hold them (the row parser's hot
    path reads ``times`` directly, and ``folds`` is empty until a repeated time is seen).
    """

    def __init__(self, zone: tzinfo = UTC) -> None:
        self.zone = zone
        self._utc = zone is UTC or getattr(zone, "key", None) in ("UTC", "Etc/UTC")
        self.times: dict[str, int] = {}  # texts of one instant only
        self.folds: dict[str, tuple[int, int]] = {}  # texts of a repeated local time
        self._days: dict[str, int] = {}  # "YYYY-MM-DD" -> its first second (UTC zone only)

    def second_of(self, value: object, window: Window | None) -> int | None:
        """The unix second of the date-time ``value`` (inside ``window`` when one of its
        instants is), or None when it cannot be read."""
        try:
            millis = self.millis(value)
        except FieldError:
            return None
        folds = self.folds.get(value) if isinstance(value, str) else None
        if folds is not None and window is not None:
            millis = within(folds, _bounds(window))[0]
        return millis // 1000

    def resolve(
        self,
        texts: tuple[object, object, object, object],
        values: tuple[int, int, int, int],
        window: Window | None,
    ) -> tuple[int, int, int, int]:
        """``values`` (start, end, created, modified) with repeated local times resolved."""
        start_text, end_text, created_text, modified_text = texts
        start_at, end_at, created_at, modified_at = values
        candidates = self._candidates
        if self._repeats(start_text) or self._repeats(end_text):
            start_at, end_at = resolve_interval(
                candidates(start_text, start_at), candidates(end_text, end_at)
            )
        if self._repeats(created_text) or self._repeats(modified_text):
            created_bounds = modified_bounds = None
            if window is not None:
                if window.kind is WindowKind.CREATED:
                    created_bounds = _bounds(window)
                else:
                    modified_bounds = _bounds(window)
            created_at, modified_at = resolve_interval(
                candidates(created_text, created_at),
                candidates(modified_text, modified_at),
                created_bounds,
                modified_bounds,
            )
        return start_at, end_at, created_at, modified_at

    def _repeats(self, text: object) -> bool:
        """Whether ``text`` is a local time that a fall-back repeats (seen before)."""
        return isinstance(text, str) and text in self.folds

    def _candidates(self, text: object, value: int) -> tuple[int, ...]:
        """Both instants of a repeated local time, else ``value`` alone."""
        folds = self.folds.get(text) if isinstance(text, str) else None
        return (value,) if folds is None else folds

    def millis(self, value: object) -> int:
        """Epoch ms of a date-time; the first occurrence for a repeated local time (whose
        both instants are then in ``folds``, for :meth:`resolve`). Raises
        :class:`FieldError` for anything else."""
        if isinstance(value, str):
            cached = self.times.get(value)
            if cached is None:
                folds = self.folds.get(value)
                if folds is not None:
                    return folds[0]
                parsed = self._parse_text_time(value)
                if isinstance(parsed, tuple):
                    if len(self.folds) >= _FOLD_LIMIT:
                        self.folds.clear()
                    self.folds[value] = parsed
                    return parsed[0]
                cached = parsed
                if len(self.times) >= _CACHE_LIMIT:
                    self.times.clear()
                self.times[value] = cached
            return cached
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value <= _MAX_SECONDS:
                raise FieldError(f"unix seconds {value} out of range")
            return value * 1000
        raise FieldError(f"expected {_DATE_TIME_HINT}, got {show(value)}")

    def _parse_text_time(self, text: str) -> int | tuple[int, int]:
        if self._utc and len(text) == 19 and text[10] == " " and text[16] == ":":
            # Days repeat far more than whole date-times: cached (only days of date-times
            # that parsed); hours:minutes and seconds are looked up in fixed tables.
            day = self._days.get(text[:10])
            minutes = _HOURS_MINUTES.get(text[11:16])
            seconds = _SECONDS.get(text[17:19])
            if day is not None and minutes is not None and seconds is not None:
                return (day + minutes + seconds) * 1000
        if (
            len(text) == 19
            and text[4] == "-"
            and text[7] == "-"
            and text[10] == " "
            and text[13] == ":"
            and text[16] == ":"
            and text.isascii()
        ):
            y, mo, d = text[0:4], text[5:7], text[8:10]
            h, mi, s = text[11:13], text[14:16], text[17:19]
            if (
                y.isdigit()
                and mo.isdigit()
                and d.isdigit()
                and h.isdigit()
                and mi.isdigit()
                and s.isdigit()
            ):
                try:
                    if self._utc:
                        return self._utc_millis(
                            text, int(y), int(mo), int(d), int(h), int(mi), int(s)
                        )
                    local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
                    return _one_or_folds(instants(local, self.zone))
                except (ValueError, OverflowError):
                    raise FieldError(f"not a valid date-time: {show(text)}") from None
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError:
            raise FieldError(f"expected {_DATE_TIME_HINT}, got {show(text)}") from None
        try:
            if parsed.tzinfo is None:
                found = instants(parsed, self.zone)
            else:
                found = (int(parsed.timestamp() * 1000),)
        except (OverflowError, ValueError):
            raise FieldError(f"date-time out of range: {show(text)}") from None
        if not all(0 <= millis <= _MAX_SECONDS * 1000 for millis in found):
            raise FieldError(f"date-time out of range: {show(text)}")
        return _one_or_folds(found)

    def _utc_millis(self, text: str, y: int, mo: int, d: int, h: int, mi: int, s: int) -> int:
        """``text``, 'YYYY-MM-DD HH:MM:SS' in UTC with these parts; caches its day."""
        day = (date(y, mo, d).toordinal() - _EPOCH_ORDINAL) * 86_400
        if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 60):
            raise ValueError("time out of range")
        clock = h * 3_600 + mi * 60 + s
        if len(self._days) >= _DAY_LIMIT:
            self._days.clear()
        self._days[text[:10]] = day
        return (day + clock) * 1000


def _one_or_folds(found: tuple[int] | tuple[int, int]) -> int | tuple[int, int]:
    return found[0] if len(found) == 1 else found


def _bounds(window: Window) -> Bounds:
    """A window's unix-second bounds as the epoch ms its rows' instants lie in."""
    return (window.start * 1000, window.end * 1000 + 999)


# 'HH:MM' -> seconds and 'SS' -> seconds, for every valid time of day.
_HOURS_MINUTES = {f"{h:02d}:{m:02d}": h * 3_600 + m * 60 for h in range(24) for m in range(60)}
_SECONDS = {f"{s:02d}": s for s in range(60)}
