"""Two to ten runs side by side: params, args and configuration, metrics, and the output files
whose contents differ (by SHA-256). (Seam: ``Service.compare`` returns the same facts.)"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..runs import RunRecord
from ..metrics import MetricPoint
from .reads import Scope, display, get_record, metric_series, snapshot_config

__all__ = ["Row", "Comparison", "compare_runs", "MIN_RUNS", "MAX_RUNS"]

MIN_RUNS, MAX_RUNS = 2, 10


@dataclass(frozen=True)
class Row:
    section: str  # "run", "param", "metric", "config" or "file"
    label: str
    values: tuple[str, ...]  # one per run, "" where the run has none

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass(frozen=True)
class Comparison:
    runs: tuple[RunRecord, ...]
    rows: tuple[Row, ...]
    series: tuple[dict[str, list[MetricPoint]], ...]  # each run's metric series, in the runs' order
    same_files: int  # output files present in every run with the same contents

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [r.id for r in self.runs],
            "rows": [{"section": r.section, "label": r.label, "values": list(r.values), "differs": r.differs}
                     for r in self.rows],
            "same_files": self.same_files,
        }


def compare_runs(scope: Scope, run_ids: list[str]) -> Comparison:
    ids = list(dict.fromkeys(i for i in run_ids if i))
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise ConfigError(f"Compare takes {MIN_RUNS} to {MAX_RUNS} different runs, not {len(ids)}.")
    runs = tuple(get_record(scope, run_id) for run_id in ids)
    if len({r.id for r in runs}) < len(runs):
        raise ConfigError("Two of the ids given name the same run; compare takes different runs.")
    series = [metric_series(scope, r) for r in runs]
    rows = [
        Row("run", "target", tuple(r.target for r in runs)),
        Row("run", "script", tuple(r.script for r in runs)),
        Row("run", "args", tuple(" ".join(r.args) for r in runs)),
        Row("run", "status", tuple(r.status.value for r in runs)),
        Row("run", "snapshot", tuple(r.snapshot[:12] for r in runs)),
    ]
    rows += _keyed("param", [{k: display(v) for k, v in r.params.items()} for r in runs])
    rows += _keyed("metric", [{k: display(v) for k, v in r.metrics.items()} for r in runs])
    rows += _keyed("config", [snapshot_config(scope, r) for r in runs])
    files = _keyed("file", [{a.path: a.sha256 for a in r.artifacts} for r in runs])
    differing = [Row("file", f.label, tuple(v[:12] if v else "absent" for v in f.values)) for f in files if f.differs]
    return Comparison(runs, tuple(rows + differing), tuple(series), len(files) - len(differing))


def _keyed(section: str, maps: list[dict[str, str]]) -> list[Row]:
    keys = sorted({key for m in maps for key in m})
    return [Row(section, key, tuple(m.get(key, "") for m in maps)) for key in keys]
