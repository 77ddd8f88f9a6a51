"""Everything the web page reads, through the service and its RunRepository, never a backend.

Each function is one call to the service (the CLI's API) or the RunRepository it hands out.
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..config_yaml import load_yaml
from ..errors import RunNotFound, SparkJobsError
from ..history.query import RunPage, RunQuery
from ..history.sync import reading_notice
from ..metrics import MetricPoint
from ..project_config import load_project
from ..runs import Artifact, RunRecord
from ..service import SparkJobs
from ..snapshot_store import SnapshotStore

__all__ = ["Scope", "describe", "query_runs", "get_record", "metric_series", "log_text", "find_artifacts",
           "artifact_file", "artifact_head", "snapshot_config"]

#: How much of one file a preview reads, and how many points a series may have on the page.
PREVIEW_BYTES = 256 * 1024
_CONFIG_BYTES = 64 * 1024


@dataclass(frozen=True)
class Scope:
    """Which runs the page shows: a project's (found as the CLI finds it), or every project's."""

    service: SparkJobs
    project_dir: Path | None
    all_projects: bool = False


def describe(scope: Scope) -> str:
    """Whose runs the page shows, and from which run store, for its header."""
    store = scope.service.repository(scope.project_dir).store.location
    if scope.project_dir is None or scope.all_projects:
        return f"every project · {store}"
    return f"project {load_project(scope.project_dir, scope.service.environ).name} · {store}"


def query_runs(scope: Scope, query: RunQuery) -> RunPage:
    """One page of the runs in scope, filtered and sorted by the service's run index, as the
    CLI's ``runs list`` reads them: only that page's records are loaded."""
    return scope.service.query_runs(scope.project_dir, query, all_projects=scope.all_projects, progress=_indexing)


def _indexing(label: str, total: int) -> None:
    """The first page of a large store waits while every record is read once: the server's
    console says why (the browser only shows it loading)."""
    print(reading_notice(total, "pages"), file=sys.stderr, flush=True)


def get_record(scope: Scope, run_id: str) -> RunRecord:
    return scope.service.get_run(scope.project_dir, run_id)


def metric_series(scope: Scope, record: RunRecord) -> dict[str, list[MetricPoint]]:
    """Every value each metric was logged with, in order, read by the service as the CLI reads it.
    A metric the record has but the series lacks (a store written by hand, or a lost file) gets
    its last value as its only point."""
    series = scope.service.get_metrics(scope.project_dir, record.id)
    for name, value in record.metrics.items():
        series.setdefault(name, [MetricPoint(name, value, 0, record.ended_at or record.started_at)])
    return series


def log_text(scope: Scope, record: RunRecord) -> str:
    return scope.service.get_log(scope.project_dir, record.id)


def find_artifacts(record: RunRecord, path: str) -> list[Artifact]:
    """The artifacts at ``path``: one file, or every file of a folder given with a trailing
    ``/``. Only paths the record lists can match, so nothing outside the run's outputs (``..``,
    another run, the snapshot objects) is ever reachable from a URL."""
    if path.endswith("/"):
        return [a for a in record.artifacts if a.path.startswith(path)]
    return [a for a in record.artifacts if a.path == path]


@contextmanager
def artifact_file(scope: Scope, record: RunRecord, artifact: Artifact) -> Iterator[Path]:
    """The artifact's bytes in a temporary file, streamed from the store (a model may be large)."""
    repo = scope.service.repository(scope.project_dir)
    with tempfile.TemporaryDirectory(prefix="sparkjobs-ui-") as folder:
        local = Path(folder) / "artifact"
        try:
            repo.store.get_file(f"{repo.run_prefix(record.id)}/{artifact.path}", local)
        except FileNotFoundError:
            raise RunNotFound(f"Run {record.id} lists {artifact.path}, but the run store no longer has it.") from None
        yield local


def artifact_head(scope: Scope, record: RunRecord, artifact: Artifact, limit: int = PREVIEW_BYTES) -> bytes:
    """The first ``limit`` bytes of an artifact, for a preview."""
    with artifact_file(scope, record, artifact) as local, open(local, "rb") as handle:
        return handle.read(limit)


def snapshot_config(scope: Scope, record: RunRecord) -> dict[str, str]:
    """The run's ``aml_config/`` as it was, from its snapshot: each YAML value flattened to
    ``file: key.sub`` → text, so runs' configurations can be set side by side. Empty when the
    snapshot cannot be read (its objects are kept in the same store, so that is rare)."""
    repo = scope.service.repository(scope.project_dir)
    snapshots = SnapshotStore(repo.store)
    try:
        entries = snapshots.load_manifest(record.snapshot) if record.snapshot else ()
    except SparkJobsError:
        return {}
    flat: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="sparkjobs-ui-") as folder:
        for entry in entries:
            if not entry.path.startswith("aml_config/") or entry.size > _CONFIG_BYTES:
                continue
            local = Path(folder) / "config"
            try:
                repo.store.get_file(snapshots.object_key(entry.sha256), local)
                _flatten(entry.path.removeprefix("aml_config/"), load_yaml(local), flat)
            except Exception:  # a file that is not YAML (or gone) is compared by its digest
                flat[entry.path.removeprefix("aml_config/")] = entry.sha256[:12]
    return flat


def _flatten(prefix: str, value: Any, into: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{prefix}: {key}" if ": " not in prefix else f"{prefix}.{key}", item, into)
    else:
        into[prefix] = display(value)


def display(value: Any) -> str:
    """A logged or configured value as text: numbers as Python writes them, NaN and infinities
    by name, lists and objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, allow_nan=True)
    return str(value)
