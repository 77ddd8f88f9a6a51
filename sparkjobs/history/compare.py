"""2 to 10 runs side by side: config, args, params, metrics, and the output files that differ.

``compare_runs`` builds one RunComparison; the CLI prints it (or its JSON) and the web page
renders the same object. Every row says whether its values differ, so "differences only" is a
filter over rows (``only_differences``), not another comparison.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from ..runs import RunRecord

__all__ = ["CompareRow", "OutputRow", "RunComparison", "compare_runs", "check_count", "MIN_RUNS", "MAX_RUNS"]

MIN_RUNS, MAX_RUNS = 2, 10


@dataclass(frozen=True)
class CompareRow:
    name: str
    values: tuple[Any, ...]  # one per run, in the runs' order; None where that run has none
    differs: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "values": list(self.values), "differs": self.differs}


@dataclass(frozen=True)
class OutputRow:
    path: str  # outputs/...
    sha256: tuple[str | None, ...]  # one per run; None where that run has no such file
    sizes: tuple[int | None, ...]
    differs: bool

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": list(self.sha256), "sizes": list(self.sizes), "differs": self.differs}


@dataclass(frozen=True)
class RunComparison:
    runs: tuple[RunRecord, ...]
    config: tuple[CompareRow, ...]  # target, run configuration, snapshot, project, how it ended
    args: tuple[CompareRow, ...]  # the script, then each option (--alpha) or positional argument
    params: tuple[CompareRow, ...]
    metrics: tuple[CompareRow, ...]  # the last value of each
    outputs: tuple[OutputRow, ...]

    @property
    def sections(self) -> dict[str, tuple[CompareRow, ...]]:
        return {"config": self.config, "args": self.args, "params": self.params, "metrics": self.metrics}

    def only_differences(self) -> "RunComparison":
        """The comparison without the rows whose values are equal across the runs; metrics are kept
        whole (side by side is their point)."""
        keep = lambda rows: tuple(row for row in rows if row.differs)  # noqa: E731
        return replace(self, config=keep(self.config), args=keep(self.args), params=keep(self.params),
                       outputs=keep(self.outputs))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"runs": [run.id for run in self.runs]}
        data.update({name: [row.to_json() for row in rows] for name, rows in self.sections.items()})
        data["outputs"] = [row.to_json() for row in self.outputs]
        return data


def check_count(count: int) -> None:
    if not MIN_RUNS <= count <= MAX_RUNS:
        raise ConfigError(f"Compare takes {MIN_RUNS} to {MAX_RUNS} runs; {count} given.")


def compare_runs(runs: list[RunRecord]) -> RunComparison:
    check_count(len(runs))
    ids = [run.id for run in runs]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ConfigError(f"Run {twice[0]} is named more than once; name each run to compare once.")
    config = [_config(run) for run in runs]
    args = [_arguments(run) for run in runs]
    return RunComparison(
        runs=tuple(runs),
        config=_rows(config),
        args=_rows(args),
        params=_rows([run.params for run in runs]),
        metrics=_rows([run.metrics for run in runs]),
        outputs=_outputs(runs),
    )


def _config(run: RunRecord) -> dict[str, Any]:
    config = {
        "project": run.project, "target": run.target, "runconfig": run.details.get("runconfig"),
        "snapshot": run.snapshot, "status": run.status.value, "exit code": run.exit_code,
        "started": run.started_at, "ended": run.ended_at,
    }
    if run.environment:  # only runs that declared dependencies have these rows (issue 12)
        config["environment"] = run.environment.digest
        config["python packages"] = ", ".join(run.environment.packages)
    return config


def _arguments(run: RunRecord) -> dict[str, Any]:
    """The script, then ``--name value`` / ``--name=value`` options by name (a bare ``--flag`` is
    true) and other arguments by position, so the same option lines up across runs."""
    found: dict[str, Any] = {"script": run.script}
    items, position = list(run.args), 0
    while items:
        item = items.pop(0)
        if item.startswith("-") and len(item) > 1 and not _number(item):
            name, equals, value = item.partition("=")
            if equals:
                found[name] = value
            elif items and not (items[0].startswith("-") and not _number(items[0])):
                found[name] = items.pop(0)
            else:
                found[name] = True
        else:
            position += 1
            found[f"argument {position}"] = item
    return found


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _same(values: list[Any]) -> bool:
    # As JSON, so 1 and 1.0, or equal lists and objects, compare equal whatever their Python types.
    texts = {json.dumps(json.loads(json.dumps(value, default=str), parse_int=float), sort_keys=True) for value in values}
    return len(texts) == 1


def _rows(per_run: list[dict[str, Any]]) -> tuple[CompareRow, ...]:
    names: dict[str, None] = {}
    for values in per_run:
        names.update(dict.fromkeys(str(name) for name in values))
    rows = []
    for name in names:
        values = [values.get(name) for values in per_run]
        present = [name in values for values in per_run]
        rows.append(CompareRow(name, tuple(values), not all(present) or not _same(values)))
    return tuple(rows)


def _outputs(runs: list[RunRecord]) -> tuple[OutputRow, ...]:
    files = [{a.path: a for a in run.artifacts} for run in runs]
    paths = sorted({path for per_run in files for path in per_run})
    rows = []
    for path in paths:
        found = [per_run.get(path) for per_run in files]
        digests = tuple(a.sha256 if a else None for a in found)
        rows.append(OutputRow(path, digests, tuple(a.size if a else None for a in found), len(set(digests)) > 1))
    return tuple(rows)
