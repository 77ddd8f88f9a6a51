"""Each page as data: what its template shows and what its JSON twin returns, from one read.

Pages are rendered by Jinja2 with autoescape on, so every value from a run (a metric's name, an
arg, a file name) is escaped wherever a template puts it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from ..artifact_view import EntryKind, group_artifacts
from ..errors import SparkJobsError
from ..runs import RunRecord
from ..wording import count, size
from .charts import PALETTE, Line, line_chart, numeric_points
from .compare import compare_runs
from .previews import MAX_IMAGE_BYTES, MAX_PREVIEWS, Kind, Preview, kind_of, render
from .reads import Scope, artifact_head, display, find_artifacts, get_record, log_text, metric_series, query_runs
from .table import BUILT_IN, build_page, cell, descending_first, duration_seconds, duration_text, parse_query

__all__ = ["View", "runs_view", "run_view", "compare_view", "error_view", "run_url", "file_url", "LOG_TAIL_CHARS"]

LOG_TAIL_CHARS = 64 * 1024


def run_url(run_id: str, suffix: str = "") -> str:
    return f"/runs/{quote(run_id, safe='')}{suffix}"


def file_url(run_id: str, path: str, action: str = "files") -> str:
    return run_url(run_id, f"/{action}/{quote(path)}")


@dataclass(frozen=True)
class View:
    template: str
    context: dict[str, Any]
    data: Any  # the JSON twin


def runs_view(scope: Scope, params: dict[str, list[str]]) -> View:
    query = parse_query(params)
    page = build_page(lambda wanted: query_runs(scope, wanted), query)
    headings = []
    # The picked metrics and params come before the snapshot digest, which is rarely read.
    for key in [*list(BUILT_IN)[:-1], *page.columns, "snapshot"]:
        active = query.sort == key
        # A click sorts by the column; a second click on the sorted column turns the order round.
        url = query.url(sort=key, descending=not query.descending if active else descending_first(key), page=1)
        label = BUILT_IN.get(key) or key.split(":", 1)[1]
        headings.append({"key": key, "label": label, "kind": key.split(":")[0] if ":" in key else "",
                         "url": url, "arrow": ("▼" if query.descending else "▲") if active else ""})
    rows = [{"record": r, "cells": [_cell_text(r, h["key"]) for h in headings]} for r in page.rows]
    context = {"page": page, "query": query, "headings": headings, "rows": rows,
               "prev": query.url(page=min(query.page, page.pages) - 1) if query.page > 1 else None,
               "next": query.url(page=query.page + 1) if query.page < page.pages else None,
               "json_url": query.url("/runs.json"), "scope": scope}
    data = {"total": page.total, "page": min(query.page, page.pages), "pages": page.pages, "columns": list(page.columns),
            "runs": [r.to_json() for r in page.rows]}
    return View("runs.html", context, data)


def _cell_text(record: RunRecord, key: str) -> str:
    value = cell(record, key)
    if key == "duration":
        return duration_text(value)
    if key == "started":
        return record.started_at[:16].replace("T", " ")
    if key == "snapshot":
        return record.snapshot[:12]
    return display(value)


def run_view(scope: Scope, run_id: str) -> View:
    record = get_record(scope, run_id)
    series = metric_series(scope, record)
    metrics = []
    for name, points in sorted(series.items()):
        chart = line_chart(name, [Line(name, PALETTE[0], numeric_points(points))]) if len(points) > 1 else None
        metrics.append({"name": name, "last": display(points[-1].value), "count": len(points), "chart": chart})
    log = log_text(scope, record)
    entries, previews = [], []
    for entry in group_artifacts(record.artifacts):
        folder = entry.kind is not EntryKind.FILE
        what = f"{entry.kind.value}, {count(entry.files, 'file')}" if folder else ""
        entries.append({"path": entry.path, "what": what, "size": size(entry.size),
                        "download": file_url(record.id, entry.path, "download"), "zip": folder})
        if len(previews) < MAX_PREVIEWS:
            preview = _preview(scope, record, entry.path, folder)
            if preview is not None:
                previews.append(preview)
    context = {
        "record": record, "duration": duration_text(duration_seconds(record)), "metrics": metrics,
        "params": sorted((k, display(v)) for k, v in record.params.items()),
        "log_tail": log[-LOG_TAIL_CHARS:], "log_cut": len(log) > LOG_TAIL_CHARS, "log_offset": len(log),
        "live": not record.status.is_terminal, "entries": entries, "previews": previews,
        "inputs": [_lineage(item) for item in record.inputs], "scope": scope,
        "packages": _packages(record),
    }
    data = {"run": record.to_json(),
            "metrics": {n: [{"value": p.value, "step": p.step, "time": p.time} for p in pts] for n, pts in series.items()}}
    return View("run.html", context, data)


def _preview(scope: Scope, record: RunRecord, path: str, folder: bool) -> dict[str, Any] | None:
    """A file's preview; for a table Spark wrote, its first part file with rows in it."""
    if folder:
        parts = [a for a in find_artifacts(record, path) if a.size and kind_of(a.path) in (Kind.CSV, Kind.JSON)]
        artifact = parts[0] if parts else None
    else:
        artifact = next(iter(find_artifacts(record, path)), None)
    kind = kind_of(artifact.path) if artifact else None
    if artifact is None or kind is None:
        return None
    if kind is Kind.IMAGE:
        if artifact.size > MAX_IMAGE_BYTES:
            return None
        preview = Preview(artifact.path, kind)
    else:
        preview = render(artifact.path, kind, artifact_head(scope, record, artifact), artifact.size)
    return {"title": path, "preview": preview, "src": file_url(record.id, artifact.path)}


def _packages(record: RunRecord) -> list[tuple[str, str]]:
    """The run's Python dependencies as (name, version), from the record's ``name==version``."""
    if record.environment is None:
        return []
    return [(name, version) for name, _, version in (p.partition("==") for p in record.environment.packages)]


def _lineage(item: dict[str, str]) -> dict[str, str]:
    """"model.pkl from run X": where an input the args referenced came from."""
    run, path = item.get("run", ""), item.get("path", "")
    return {"reference": item.get("reference", ""), "resolved": item.get("resolved", ""), "run": run, "path": path,
            "name": path.rsplit("/", 1)[-1], "run_url": run_url(run) if run else "",
            "file_url": file_url(run, path, "download") if run and path else ""}


def compare_view(scope: Scope, params: dict[str, list[str]]) -> View:
    ids = [i.strip() for value in params.get("run", []) for i in value.split(",")]
    comparison = compare_runs(scope, ids)
    diff_only = (params.get("diff") or ["1"])[-1] != "0"
    names = sorted({name for s in comparison.series for name in s})
    charts = []
    for name in names:
        lines = [Line(r.id, PALETTE[i], numeric_points(s.get(name, []))) for i, (r, s) in enumerate(zip(comparison.runs, comparison.series))]
        if any(len(s.get(name, [])) > 1 for s in comparison.series):
            charts.append({"name": name, "chart": line_chart(name, lines)})
    sections = {}
    for row in comparison.rows:
        sections.setdefault(row.section, []).append(row)
    context = {"comparison": comparison, "sections": sections, "charts": charts, "diff_only": diff_only,
               "colours": PALETTE, "scope": scope, "ids": [r.id for r in comparison.runs],
               "json_url": "/compare.json?" + urlencode([("run", r.id) for r in comparison.runs])}
    return View("compare.html", context, comparison.to_json())


def error_view(status: int, error: SparkJobsError | str) -> View:
    return View("error.html", {"status": status, "message": str(error)}, {"error": str(error)})
