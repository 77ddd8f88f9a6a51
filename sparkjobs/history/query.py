"""What a runs listing asks for (filters, a window of the newest runs, a sort, a page) and gets.

The CLI's ``runs list`` and the web page's runs table describe their request as one RunQuery;
the index answers it with a RunPage.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..runs import RunRecord, RunStatus

__all__ = ["RunQuery", "RunPage", "SortKey", "SortField", "ValueRank", "classify", "parse_statuses"]


class SortField(str, enum.Enum):
    METRIC = "metric"
    PARAM = "param"
    STARTED = "started"
    DURATION = "duration"
    STATUS = "status"
    TARGET = "target"
    SCRIPT = "script"
    SNAPSHOT = "snapshot"


class ValueRank(enum.IntEnum):
    """How a logged value sorts: numbers by value, then text, then what has no order; runs
    without the value come last whichever way the sort goes."""

    NUMBER = 0  # ±Infinity included, at their ends
    TEXT = 1
    UNORDERED = 2  # NaN, lists, objects
    MISSING = 3


def classify(value: Any) -> tuple[ValueRank, float | None, str]:
    """(rank, number, text) of a metric or param value, as the index stores it to sort by."""
    if isinstance(value, bool):
        return ValueRank.TEXT, None, str(value).lower()
    if isinstance(value, (int, float)):
        number = float(value)
        return (ValueRank.UNORDERED, None, "NaN") if math.isnan(number) else (ValueRank.NUMBER, number, "")
    if isinstance(value, str):
        special = {"Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:  # how the record stores the infinities JSON cannot hold
            return ValueRank.NUMBER, special[value], ""
        return (ValueRank.UNORDERED, None, value) if value == "NaN" else (ValueRank.TEXT, None, value)
    return ValueRank.UNORDERED, None, ""


@dataclass(frozen=True)
class SortKey:
    field: SortField
    name: str = ""  # the metric's or param's name
    descending: bool = False

    @classmethod
    def parse(cls, text: str, *, descending: bool = False) -> "SortKey":
        """``accuracy`` ascending, ``-accuracy`` descending (``descending`` flips it); a metric,
        or ``param:NAME``, or one of the columns: started, duration, status, target, script."""
        if text.startswith("-"):
            text, descending = text[1:], not descending
        if not text:
            raise ConfigError("--sort needs a metric name, e.g. --sort accuracy or --sort=-accuracy.")
        if text.startswith("param:"):
            return cls(SortField.PARAM, text[len("param:"):], descending)
        if text.startswith("metric:"):
            return cls(SortField.METRIC, text[len("metric:"):], descending)
        return cls(SortField.METRIC, text, descending)


def parse_statuses(text: str) -> frozenset[RunStatus]:
    """``failed`` or ``failed,killed``; an unknown status is an error naming the known ones."""
    statuses = set()
    for word in filter(None, (part.strip().lower() for part in text.split(","))):
        try:
            statuses.add(RunStatus(word))
        except ValueError:
            known = ", ".join(s.value for s in RunStatus)
            raise ConfigError(f"--status {word!r} is not a run status; choose from {known}.") from None
    return frozenset(statuses)


@dataclass(frozen=True)
class RunQuery:
    """Which runs, in which order. Filters first; ``last`` then keeps the newest N of those;
    ``sort`` orders them (newest first without one); ``offset`` and ``limit`` cut the page."""

    statuses: frozenset[RunStatus] = frozenset()
    target: str | None = None
    #: The script as recorded (relative to the project); glob patterns (*, ?, [...]) allowed,
    #: and a name without '/' also matches that file in any folder.
    script: str | None = None
    exact_script: bool = False  # the script exactly as recorded (a choice the web page offers), no pattern
    last: int | None = None
    sort: SortKey | None = None
    limit: int | None = 50
    offset: int = 0


@dataclass(frozen=True)
class RunPage:
    runs: tuple[RunRecord, ...]
    total: int  # how many runs the query matches, before offset and limit
    broken: tuple[str, ...] = field(default=())  # records the store holds but that cannot be read, with why
    #: Every metric and param name the project's runs logged: the columns a runs table can offer.
    metric_names: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()
    #: Every status (as seen now), target and script among them: the filters a runs table offers.
    statuses: tuple[RunStatus, ...] = ()
    targets: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ()
