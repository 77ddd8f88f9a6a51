"""The runs table: which columns, which filters, which order and which page, all from the query
string (so a view is a URL that can be shared), and the rows that follow from it.

Query string: ``status``, ``target``, ``script`` filter (exact); ``sort=KEY`` or ``sort_desc=KEY``
order (newest first by default); ``col=metric:NAME`` / ``col=param:NAME`` pick columns (an empty
``col=`` alone means none); ``page`` and ``size`` paginate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

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


def build_page(records: list[RunRecord], query: RunQuery) -> RunsPage:
    """Filter, sort and cut one page from every run in scope (given newest first)."""
    metrics = sorted({name for r in records for name in r.metrics})
    params = sorted({name for r in records for name in r.params})
    every_column = [f"metric:{m}" for m in metrics] + [f"param:{p}" for p in params]
    choices = {
        "status": [s.value for s in RunStatus if any(r.status is s for r in records)],
        "target": sorted({r.target for r in records}),
        "script": sorted({r.script for r in records}),
        "columns": every_column,
    }
    picked = query.columns if query.columns is not None else tuple(every_column[:DEFAULT_METRIC_COLUMNS])
    kept = [r for r in records if (not query.status or r.status.value == query.status)
            and (not query.target or r.target == query.target) and (not query.script or r.script == query.script)]
    if (query.sort, query.descending) != ("started", True):
        kept = _sorted(kept, query.sort, query.descending)
    pages = max(1, math.ceil(len(kept) / query.size))
    page = min(query.page, pages)
    start = (page - 1) * query.size
    return RunsPage(query, kept[start:start + query.size], len(kept), pages, picked, choices)


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


def _sorted(records: list[RunRecord], key: str, descending: bool) -> list[RunRecord]:
    """Sorted by one column: numbers, then text (a metric that is sometimes a string still sorts),
    then runs without a value (or with NaN), which come last either way."""
    numbers, texts, missing = [], [], []
    for record in records:
        value = cell(record, key)
        if isinstance(value, bool) or value is None or (isinstance(value, float) and math.isnan(value)):
            missing.append(record)
        elif isinstance(value, (int, float)):
            numbers.append((value, record))
        else:
            texts.append((str(value), record))
    ordered = [r for _, r in sorted(numbers, key=lambda pair: pair[0], reverse=descending)]
    ordered += [r for _, r in sorted(texts, key=lambda pair: pair[0], reverse=descending)]
    return ordered + missing


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
