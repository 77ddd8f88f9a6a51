"""The runs table: which columns, which filters, which order and which page, all from the query
string (so a view is a URL that can be shared), and the rows that follow from it.

Query string: ``status``, ``target``, ``script`` filter (exact); ``sort=KEY`` or ``sort_desc=KEY``
order (newest first by default); ``col=metric:NAME`` / ``col=param:NAME`` pick columns (an empty
``col=`` alone means none); ``page`` and ``size`` paginate.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from ..history.query import RunPage, SortField, SortKey
from ..history.query import RunQuery as HistoryQuery
from ..runs import RunRecord, RunStatus

__all__ = ["RunQuery", "RunsPage", "BUILT_IN", "parse_query", "build_page", "duration_seconds", "duration_text"]

#: Built-in columns: key → heading.
BUILT_IN = {"id": "Run", "status": "Status", "target": "Target", "script": "Script and args",
            "started": "Started", "duration": "Duration", "snapshot": "Snapshot"}
DEFAULT_SIZE, MAX_SIZE, DEFAULT_METRIC_COLUMNS = 50, 500, 4


@dataclass(frozen=True)
class RunQuery:
    status: str = ""
    target: str = ""
    script: str = ""
    sort: str = "started"
    descending: bool = True
    columns: tuple[str, ...] | None = None  # None: the default pick
    page: int = 1
    size: int = DEFAULT_SIZE

    def url(self, path: str = "/", **changes: Any) -> str:
        """This view's URL with some parts changed (a page link, a column's sort link)."""
        values = {**self.__dict__, **changes}
        params: list[tuple[str, str]] = [(k, values[k]) for k in ("status", "target", "script") if values[k]]
        if (values["sort"], values["descending"]) != ("started", True):
            params.append(("sort_desc" if values["descending"] else "sort", values["sort"]))
        if values["columns"] is not None:
            params += [("col", c) for c in values["columns"]] or [("col", "")]
        if values["page"] != 1:
            params.append(("page", str(values["page"])))
        if values["size"] != DEFAULT_SIZE:
            params.append(("size", str(values["size"])))
        return path + ("?" + urlencode(params) if params else "")


@dataclass(frozen=True)
class RunsPage:
    query: RunQuery
    rows: list[RunRecord]
    total: int  # after filtering
    pages: int
    columns: tuple[str, ...]  # the picked metric:/param: columns
    choices: dict[str, list[str]]  # filter → the values seen; "columns" → every metric:/param:


def parse_query(params: dict[str, list[str]]) -> RunQuery:
    def one(name: str) -> str:
        return (params.get(name) or [""])[-1].strip()

    sort, descending = ("started", True)
    if one("sort"):
        sort, descending = one("sort"), False
    elif one("sort_desc"):
        sort, descending = one("sort_desc"), True
    columns = tuple(c for c in params["col"] if c) if "col" in params else None
    return RunQuery(one("status"), one("target"), one("script"), sort, descending, columns,
                    max(1, _whole(one("page"), 1)), min(MAX_SIZE, max(1, _whole(one("size"), DEFAULT_SIZE))))


def _whole(text: str, default: int) -> int:
    return int(text) if text.isdigit() else default


def build_page(read: Callable[[HistoryQuery], RunPage], query: RunQuery) -> RunsPage:
    """One page of the table, filtered, sorted and cut by the run index (``read``: the service's
    query), which loads only that page's records."""
    wanted = _history_query(query)
    size = query.size
    if wanted is None:  # a status no run can have: nothing matches, the choices still show
        found = read(HistoryQuery(limit=0))
        found = replace(found, runs=(), total=0)
    else:
        found = read(replace(wanted, limit=size, offset=(query.page - 1) * size))
    pages = max(1, math.ceil(found.total / size))
    if wanted is not None and query.page > pages:  # past the end (runs went away): the last page
        found = read(replace(wanted, limit=size, offset=(pages - 1) * size))
    every_column = [f"metric:{m}" for m in found.metric_names] + [f"param:{p}" for p in found.param_names]
    choices = {"status": [s.value for s in found.statuses], "target": list(found.targets),
               "script": list(found.scripts), "columns": every_column}
    picked = query.columns if query.columns is not None else tuple(every_column[:DEFAULT_METRIC_COLUMNS])
    return RunsPage(query, list(found.runs), found.total, pages, picked, choices)


def _history_query(query: RunQuery) -> HistoryQuery | None:
    """The index's query for the table's filters and sort; None when the status is not one."""
    try:
        statuses = frozenset({RunStatus(query.status)}) if query.status else frozenset()
    except ValueError:
        return None
    return HistoryQuery(statuses=statuses, target=query.target or None, script=query.script or None,
                        exact_script=True, sort=_sort_key(query.sort, query.descending))


def _sort_key(key: str, descending: bool) -> SortKey | None:
    """A column's sort; None (newest first) for the default order and for a column that is not one."""
    if key.startswith(("metric:", "param:")):
        kind, name = key.split(":", 1)
        return SortKey(SortField.METRIC if kind == "metric" else SortField.PARAM, name, descending)
    field = {"id": SortField.STARTED, "started": SortField.STARTED, "duration": SortField.DURATION,
             "status": SortField.STATUS, "target": SortField.TARGET, "script": SortField.SCRIPT,
             "snapshot": SortField.SNAPSHOT}.get(key)
    if field is None or (field is SortField.STARTED and descending):
        return None
    return SortKey(field, "", descending)


def descending_first(key: str) -> bool:
    """Whether a first click on a column sorts it high to low: time and metrics, where the
    newest, longest or best usually matters; names and params read better A to Z."""
    return key in ("id", "started", "duration") or key.startswith("metric:")


def cell(record: RunRecord, key: str) -> Any:
    """The value a column shows for a run, in its own type (numbers stay numbers for sorting)."""
    if key.startswith("metric:"):
        return record.metrics.get(key[7:])
    if key.startswith("param:"):
        return record.params.get(key[6:])
    return {
        "id": record.id, "status": record.status.value, "target": record.target,
        "script": " ".join([record.script, *record.args]), "started": record.started_at,
        "duration": duration_seconds(record), "snapshot": record.snapshot,
    }.get(key)


def duration_seconds(record: RunRecord) -> float | None:
    start = _instant(record.started_at)
    end = _instant(record.ended_at) if record.ended_at else (None if record.status.is_terminal else datetime.now(timezone.utc))
    return None if start is None or end is None else max(0.0, (end - start).total_seconds())


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = int(round(seconds))
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _instant(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None
