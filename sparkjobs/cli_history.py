"""The history commands' printing: ``runs list`` filters and sort, and ``runs compare``."""
from __future__ import annotations

import argparse
import json
import math
from typing import Any

from .errors import ConfigError
from .history import RunComparison, RunQuery, SortField, SortKey, parse_statuses
from .runs import RunRecord

__all__ = ["list_query", "runs_compare", "print_runs"]

_WIDTH = 24  # widest value shown in a table cell; --json has them whole
_DEFAULT_LIMIT = 50


def list_query(args: argparse.Namespace) -> RunQuery:
    if args.desc and not args.sort:
        raise ConfigError("--desc orders a --sort; name the metric to sort by, e.g. --sort accuracy --desc.")
    limit = args.limit if args.limit is not None else (args.last or _DEFAULT_LIMIT)
    return RunQuery(
        statuses=parse_statuses(args.status) if args.status else frozenset(),
        target=args.target, script=args.script, last=args.last or None,
        sort=SortKey.parse(args.sort, descending=args.desc) if args.sort else None,
        limit=limit or None,
    )


def print_runs(records: list[RunRecord], sort: SortKey | None) -> None:
    """The runs table; sorted by a metric or param, its value gets a column before the script."""
    shown = sort if sort and sort.field in (SortField.METRIC, SortField.PARAM) else None
    header = ["RUN ID", "PROJECT", "TARGET", "STATUS", "STARTED"] + ([shown.name.upper()] if shown else [])
    rows = [header + ["SCRIPT"]]
    for r in records:
        value = []
        if shown:
            values = r.metrics if shown.field is SortField.METRIC else r.params
            value = [_cell(values[shown.name]) if shown.name in values else "-"]
        rows.append([r.id, r.project, r.target, r.status.value, r.started_at[:19].replace("T", " "), *value,
                     " ".join([r.script, *r.args])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1])


def runs_compare(args: argparse.Namespace) -> int:
    from .cli_commands import _project
    from .service import SparkJobs

    comparison = SparkJobs().compare(_project(args), args.run_ids)
    if not args.all:
        comparison = comparison.only_differences()
    if args.json:
        print(json.dumps(comparison.to_json(), indent=2))
        return 0
    _print_comparison(comparison, every=args.all)
    return 0


def _print_comparison(comparison: RunComparison, *, every: bool) -> None:
    runs = comparison.runs
    for number, run in enumerate(runs, 1):
        print(f"[{number}] {run.id}  {run.status.value}  {run.target}  {' '.join([run.script, *run.args])}")
    table: list[list[str]] = [[""] + [f"[{n}]" for n in range(1, len(runs) + 1)]]
    titles = {"config": "config", "args": "args", "params": "params", "metrics": "metrics"}
    for section, rows in comparison.sections.items():
        if not every and section != "metrics":
            titles[section] += " (differences only; --all shows every one)"
        table.append([titles[section] + (":" if rows else ": none differ" if section != "metrics" else ": none logged")])
        for row in rows:
            table.append([f"  {row.name}"] + [_cell(v) if v is not None or _has(run, section, row.name) else "-"
                                              for run, v in zip(runs, row.values)])
    title = "outputs" if every else "outputs that differ (by sha256)"
    table.append([title + (":" if comparison.outputs else ": none")])
    for out in comparison.outputs:
        table.append([f"  {out.path}"] + [digest[:12] if digest else "-" for digest in out.sha256])
    widths = [max((len(row[i]) for row in table if len(row) > 1), default=0) for i in range(len(runs) + 1)]
    print()
    for row in table:
        print(row[0] if len(row) == 1 else "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def _has(run: RunRecord, section: str, name: str) -> bool:
    """Whether a None in the row is the run's own value (a logged null), not a value it lacks."""
    return section == "params" and name in run.params or section == "metrics" and name in run.metrics


def _cell(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        text = f"{value:.6g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value)
    text = " ".join(text.split())  # one line per row, whatever the value holds
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"
