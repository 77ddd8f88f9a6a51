"""What a script logged, read back by the submitter: checked line by line, summarised into the
run record, and its whole series kept beside the record.

Layout in the run store (``runs.py``)::

    runs/<run-id>/metrics.jsonl   every metric point, one strict-JSON object a line (tracking.py)

The job writes the same format (``tracking.py``), but a script can write anything to those
files, so every line is checked again here: a line that is not a sound point or param is left
out and counted, never allowed to break the record.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SparkJobsError, StorageError
from .runs import RunRepository
from .storage.base import Store
from .tracking import MAX_METRICS, MAX_PARAMS, MAX_POINTS, check_name, decode_metric, encode_metric, encode_param
from .wording import count

__all__ = ["METRICS_FILE", "PARAMS_FILE", "MetricPoint", "Logged", "parse_metrics", "parse_params", "read_logged",
           "store_series", "load_series", "left_out"]

#: The files the job appends to: in the run's work folder (local and spark targets), or beside
#: the run in the cluster's storage (cluster targets).
METRICS_FILE = "metrics.jsonl"
PARAMS_FILE = "params.jsonl"


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric. ``value`` is a number (NaN and the infinities as floats) or text."""

    name: str
    value: int | float | str
    step: int
    time: str

    @property
    def nonfinite(self) -> bool:
        return isinstance(self.value, float) and not math.isfinite(self.value)

    def to_json(self) -> dict[str, Any]:
        """As stored: strict JSON, NaN and the infinities as strings with ``"nonfinite": true``."""
        value, nonfinite = encode_metric(self.value, self.name)
        data: dict[str, Any] = {"name": self.name, "value": value, "step": self.step, "time": self.time}
        if nonfinite:
            data["nonfinite"] = True
        return data

    @property
    def stored_value(self) -> int | float | str:
        """The value as the run record's ``metrics`` holds it (strict JSON)."""
        return encode_metric(self.value, self.name)[0]


@dataclass(frozen=True)
class Logged:
    """What one run logged: its series by metric name (in the order first logged), its params,
    and how many lines could not be used."""

    series: dict[str, list[MetricPoint]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    bad_lines: int = 0

    @property
    def last_values(self) -> dict[str, int | float | str]:
        return {name: points[-1].stored_value for name, points in self.series.items() if points}


def _point(line: Any) -> MetricPoint | None:
    if not isinstance(line, dict):
        return None
    name, value, step, time = line.get("name"), line.get("value"), line.get("step"), line.get("time")
    try:
        check_name(name)
        encode_metric(value, name)
    except (TypeError, ValueError):
        return None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0 or not isinstance(time, str) or len(time) > 40:
        return None
    return MetricPoint(name, decode_metric(value), step, time)


def _json_lines(data: bytes) -> list[Any]:
    """Each line decoded, or None where it is not JSON (a cut last line after a kill)."""
    found = []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        if not raw.strip():
            continue
        try:
            found.append(json.loads(raw, parse_constant=lambda _: None))  # NaN, Infinity: not strict JSON
        except ValueError:
            found.append(None)
    return found


def parse_metrics(data: bytes) -> tuple[dict[str, list[MetricPoint]], int]:
    """The series in ``metrics.jsonl`` bytes, within the limits, and how many lines were left out."""
    series: dict[str, list[MetricPoint]] = {}
    bad = 0
    for line in _json_lines(data):
        point = _point(line)
        if point is None or (point.name not in series and len(series) >= MAX_METRICS):
            bad += 1
            continue
        points = series.setdefault(point.name, [])
        if len(points) < MAX_POINTS:
            points.append(point)
        else:
            bad += 1
    return series, bad


def parse_params(data: bytes) -> tuple[dict[str, Any], int]:
    """The params in ``params.jsonl`` bytes; the first value of a name wins, as when logged."""
    params: dict[str, Any] = {}
    bad = 0
    for line in _json_lines(data):
        try:
            name = check_name(line.get("name") if isinstance(line, dict) else None, "param")
            value = encode_param(line["value"], name)
        except (TypeError, ValueError, KeyError):
            bad += 1
            continue
        if name not in params and len(params) < MAX_PARAMS:
            params[name] = value
    return params, bad


def series_bytes(series: dict[str, list[MetricPoint]]) -> bytes:
    """The series as the run store keeps it: points grouped by metric, each in logged order."""
    lines = [json.dumps(p.to_json(), allow_nan=False, ensure_ascii=False) for points in series.values() for p in points]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _read(local: Path, store: Store | None, key: str) -> bytes | None:
    if local.is_file():
        return local.read_bytes()
    if store is None:
        return None
    try:
        return store.get_bytes(key)
    except FileNotFoundError:
        return None


def read_logged(repo: RunRepository, run_id: str, workdir: Path, remote: Store | None) -> Logged:
    """What the run logged: from its work folder (local and spark targets), else from beside the
    run in the cluster's storage ``remote``. StorageError when storage cannot be read."""
    prefix = repo.run_prefix(run_id)
    try:
        metrics = _read(workdir / METRICS_FILE, remote, f"{prefix}/{METRICS_FILE}")
        params = _read(workdir / PARAMS_FILE, remote, f"{prefix}/{PARAMS_FILE}")
    except (SparkJobsError, OSError) as exc:
        raise StorageError(f"What the script logged could not be read: {exc}") from exc
    series, bad_metrics = parse_metrics(metrics or b"")
    values, bad_params = parse_params(params or b"")
    return Logged(series, values, bad_metrics + bad_params)


def store_series(repo: RunRepository, run_id: str, logged: Logged) -> None:
    """Keep every point beside the record (nothing is written when nothing was logged)."""
    if logged.series:
        repo.store.put_bytes(f"{repo.run_prefix(run_id)}/{METRICS_FILE}", series_bytes(logged.series))


def load_series(repo: RunRepository, run_id: str) -> dict[str, list[MetricPoint]]:
    """Every point of every metric of a run, by name; empty when it logged none."""
    try:
        data = repo.store.get_bytes(f"{repo.run_prefix(run_id)}/{METRICS_FILE}")
    except FileNotFoundError:
        return {}
    return parse_metrics(data)[0]


def left_out(logged: Logged) -> str | None:
    """A sentence about lines that could not be used, or None."""
    if not logged.bad_lines:
        return None
    return (f"{count(logged.bad_lines, 'line')} of the logged metrics and params could not be used (not sound JSON "
            "points, or past the limits) and were left out.")
