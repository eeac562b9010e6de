"""The commands of a read plan (``connector.source.drift_rules``) to its executor
(``connector.source.reader.WindowReader``): the whole protocol between the sans-io rules
and the I/O that carries them out.

A plan is a generator: it yields a :data:`Command`, is sent its result and finally returns
its own. ``Fetch`` is answered with :class:`Answer` values; ``Spawn`` (a part's plan,
started ahead of being needed) with a handle that a later ``Join`` turns into that plan's
result; ``Emit``, ``Sleep`` and ``Count`` with None.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from connector.core.kinds import WindowKind
from connector.source.leaf_parts import Rows, WindowPart
from connector.source.windows import Window

if TYPE_CHECKING:
    from connector.source.drift_rules import Split


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page of a window (``per_page`` 1: a probe for the total) with extra params."""

    window: Window
    page: int
    per_page: int
    params: Mapping[str, int | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer:
    """A page as answered: ``started`` is the API clock (unix s) when the request was
    sent, None if not known yet; ``now`` the API clock when the answer came."""

    request: PageRequest
    rows: list[Any]
    total: int
    started: int | None
    now: int


@dataclass(frozen=True, slots=True)
class Fetch:
    """Send these requests at once; answered with their Answers, in order."""

    requests: tuple[PageRequest, ...]


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start this sub-plan now; answered with a handle to Join later."""

    plan: Steps[Rows | Split]


@dataclass(frozen=True, slots=True)
class Join:
    """Wait for a spawned sub-plan; answered with its result."""

    handle: int


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand on a part (the read's own plan only)."""

    part: WindowPart


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this long."""

    seconds: float


class Occurrence(StrEnum):
    """What the rules count: the name of the reader's metric (``meetings_cdc_<name>_total``)."""

    SPLIT = "window_splits"
    REREAD = "window_rereads"
    SAME_SECOND_TIE = "same_second_ties"


@dataclass(frozen=True, slots=True)
class Count:
    """Count one occurrence, labelled with a window kind."""

    what: Occurrence
    kind: WindowKind


Command: TypeAlias = Fetch | Spawn | Join | Emit | Sleep | Count
T = TypeVar("T")
#: A plan step by step: yields commands, is sent their results, returns a ``T``.
Steps: TypeAlias = Generator[Command, Any, T]
