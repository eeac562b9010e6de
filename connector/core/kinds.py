"""The kinds that name windows and cycles: label values shared by the source, the engine and
the metrics (kept here, in the bottom layer, so that ``ops.metrics`` can prime them)."""

from __future__ import annotations

from enum import StrEnum


class WindowKind(StrEnum):
    """Which timestamp a window filters on."""

    CREATED = "created"
    MODIFIED = "modified"


class CycleKind(StrEnum):
    """The kinds of cycle (the ``phase`` label of the cycle metrics)."""

    SNAPSHOT = "snapshot"
    INCREMENTAL = "incremental"
    RECONCILE = "reconcile"
    DELETE_CHECK = "delete_check"
    RESNAPSHOT = "resnapshot"
