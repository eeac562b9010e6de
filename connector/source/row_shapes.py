"""Row shapes: how the keys of a row the mapping does not model split into extras.

A row shape is a row's key set in key order; real exports have one or a few. For each,
:class:`Shapes` keeps which keys go to the meeting's ``extra`` and which to the
participant's, and takes them out of a row as frozen tuples, with the field rules
(:mod:`connector.core.masking`) applied: a dropped key is never taken, a hashed or redacted
one is masked as it is taken. This is the fast path of
:class:`connector.source.rows.RowParser`: anything it does not handle raises
:class:`NotFast`, and the parser's careful path maps the row instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from connector.core.masking import NO_MASKING, Action, Masker
from connector.core.model import Extra, Scalar

#: Distinct row shapes (key sets in key order) kept; real exports have one or a few.
_SHAPE_LIMIT = 16
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


class NotFast(Exception):
    """The fast path does not handle this row (it may still be valid)."""


class Extras:
    """The extra fields of one row shape, keys in sorted order.

    Equal extras are not shared as one tuple: ``bench/hand_code.py`` measured that at
    under 10 % of the CPU per row (issue 14); the encoder caches their encodings by value.
    """

    __slots__ = ("_masks", "_values", "keys")

    def __init__(
        self, keys: list[str], masks: tuple[tuple[int, Callable[[Any], Scalar]], ...] = ()
    ) -> None:
        """``masks``: (position in ``keys``, what its rule does to the value)."""
        self.keys = tuple(keys)
        self._values = _getter(self.keys)
        self._masks = masks

    def take(self, raw: dict[str, Any]) -> Extra:
        """The frozen extra of ``raw``; raises :class:`NotFast` for a nested value."""
        values = self._values(raw)
        if _SCALAR_TYPES.issuperset(map(type, values)):
            if self._masks:
                masked = list(values)
                for index, mask in self._masks:
                    masked[index] = mask(masked[index])
                return tuple(zip(self.keys, masked, strict=True))
            return tuple(zip(self.keys, values, strict=True))
        raise NotFast  # nested values are kept as JSON text by the careful path


@dataclass(frozen=True, slots=True)
class Shape:
    """A row shape's meeting-level and participant-level extras."""

    meeting: Extras
    participant: Extras


class Shapes:
    """The shapes seen, by key tuple (``known``: only ever cleared, never replaced, so a
    caller may hold it and call :meth:`add` on a miss)."""

    def __init__(
        self, modelled: frozenset[str], meeting_keys: frozenset[str], masker: Masker = NO_MASKING
    ) -> None:
        """``modelled``: the keys of modelled fields; ``meeting_keys``: the other keys that
        go to the meeting's extra (every remaining key goes to the participant's);
        ``masker``: the field rules applied to both extras."""
        self._modelled = modelled
        self._meeting_keys = meeting_keys
        self._masker = masker
        self.known: dict[tuple[object, ...], Shape] = {}

    def add(self, keys: tuple[object, ...]) -> Shape:
        """How rows with exactly ``keys`` (in this order) split into extras (now known);
        raises :class:`NotFast` for a key that is not a string."""
        meeting: list[str] = []
        participant: list[str] = []
        modelled, meeting_keys = self._modelled, self._meeting_keys
        for key in keys:
            if key in modelled:
                continue
            if type(key) is not str:
                raise NotFast
            (meeting if key in meeting_keys else participant).append(key)
        masker = self._masker
        shape = Shape(
            self._extras(meeting, masker.meeting_actions),
            self._extras(participant, masker.participant_actions),
        )
        if len(self.known) >= _SHAPE_LIMIT:
            self.known.clear()
        self.known[keys] = shape
        return shape

    def _extras(self, keys: list[str], actions: dict[str, Action]) -> Extras:
        kept = sorted(k for k in keys if actions.get(k) is not Action.DROP)
        masks = tuple(
            (index, self._masker.function(actions[key]))
            for index, key in enumerate(kept)
            if key in actions
        )
        return Extras(kept, masks)


def _getter(keys: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The values of ``keys`` in a row, always as a tuple."""
    if not keys:
        return lambda raw: ()
    if len(keys) == 1:
        key = keys[0]
        return lambda raw: (raw[key],)
    return itemgetter(*keys)
