"""The run record and the run layout over any Store.

Layout inside a store (the same for a local folder and an Azure container)::

    runs/<run-id>/run.json          the record, replaced whole on every update
    runs/<run-id>/driver.log        the driver's stdout and stderr
    runs/<run-id>/outputs/...       the run's artifacts
    snapshots/<digest>/manifest.json, snapshots/<digest>/COMPLETE
    objects/<ab>/<sha256>           snapshot file contents, stored once by digest
    shared/<workspace>/<project>/   the shared folder of cluster targets

Run ids start with a UTC timestamp so that sorting ids sorts runs by start time, and a run is
found by a key lookup rather than a scan.
"""
from __future__ import annotations

import enum
import secrets
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Iterator

from .errors import RunNotFound, StorageError
from .liveness import ProcessIdentity
from .storage.base import Store, check_key

__all__ = ["RunStatus", "Artifact", "RunRecord", "RunRepository", "new_run_id", "utc_now"]

RUNS = "runs"


class RunStatus(str, enum.Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"
    #: Shown, never stored: the record says running, but the sparkjobs process that owned the
    #: run is gone. ``sparkjobs runs recover`` settles it.
    LOST = "lost"

    @property
    def is_terminal(self) -> bool:
        return self not in (RunStatus.RUNNING, RunStatus.LOST)


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the run folder, e.g. "outputs/model.pkl"
    size: int
    sha256: str


@dataclass(frozen=True)
class RunRecord:
    id: str
    project: str
    target: str
    script: str
    args: tuple[str, ...]
    status: RunStatus
    started_at: str
    snapshot: str
    ended_at: str | None = None
    exit_code: int | None = None
    artifacts: tuple[Artifact, ...] = ()
    log: str | None = None  # store key of the driver log
    error: str | None = None  # why the run failed, when sparkjobs knows
    failed_artifacts: tuple[str, ...] = ()
    details: dict[str, str] = field(default_factory=dict)  # target facts: batch id, appId, URLs
    owner: ProcessIdentity | None = None  # the sparkjobs process watching the run, while it runs

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["owner"] = self.owner.to_json() if self.owner else None
        data["args"] = list(self.args)
        data["artifacts"] = [asdict(a) for a in self.artifacts]
        data["failed_artifacts"] = list(self.failed_artifacts)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunRecord":
        try:
            return cls(
                id=data["id"],
                project=data["project"],
                target=data["target"],
                script=data["script"],
                args=tuple(data.get("args", ())),
                status=RunStatus(data["status"]),
                started_at=data["started_at"],
                snapshot=data.get("snapshot", ""),
                ended_at=data.get("ended_at"),
                exit_code=data.get("exit_code"),
                artifacts=tuple(Artifact(**a) for a in data.get("artifacts", ())),
                log=data.get("log"),
                error=data.get("error"),
                failed_artifacts=tuple(data.get("failed_artifacts", ())),
                details=dict(data.get("details") or {}),
                owner=ProcessIdentity.from_json(data.get("owner")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"Run record {data.get('id', '?')} is malformed: {exc}.") from exc

    def finished(self, status: RunStatus, exit_code: int | None, **changes: Any) -> "RunRecord":
        changes.setdefault("ended_at", utc_now())
        return replace(self, status=status, exit_code=exit_code, owner=None, **changes)

    @property
    def attachable(self) -> bool:
        """A cluster batch runs on without its watcher; ``runs attach`` resumes watching it."""
        return "livy_batch_id" in self.details

    def as_seen_now(self) -> "RunRecord":
        """The record, marked lost when it says running but its owner process has died."""
        if self.status is not RunStatus.RUNNING or self.owner is None or self.attachable:
            return self
        if self.owner.is_alive() is not False:
            return self
        return replace(
            self,
            status=RunStatus.LOST,
            error=f"The sparkjobs process that ran it (pid {self.owner.pid}) ended without recording how the run "
            f"ended; 'sparkjobs runs recover {self.id}' stores what is left and records its end.",
        )


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """e.g. 20261124T073312123Z-3f9c2a: sortable by start time, unique without coordination."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


class RunRepository:
    """Reads and writes run records, logs and artifacts in the run layout of one Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def run_prefix(run_id: str) -> str:
        check_key(run_id)
        if "/" in run_id:
            raise RunNotFound(f"{run_id!r} is not a run id.")
        return f"{RUNS}/{run_id}"

    def record_key(self, run_id: str) -> str:
        return f"{self.run_prefix(run_id)}/run.json"

    def log_key(self, run_id: str) -> str:
        return f"{self.run_prefix(run_id)}/driver.log"

    def outputs_prefix(self, run_id: str) -> str:
        return f"{self.run_prefix(run_id)}/outputs"

    def save(self, record: RunRecord) -> None:
        # Both backends replace the whole object at once, so readers never see half a record.
        self.store.put_json(self.record_key(record.id), record.to_json())

    def load(self, run_id: str) -> RunRecord:
        try:
            return RunRecord.from_json(self.store.get_json(self.record_key(run_id)))
        except FileNotFoundError:
            raise RunNotFound(f"No run {run_id!r} in the run store at {self.store.location}.") from None

    def run_ids(self) -> list[str]:
        ids = {obj.key.split("/")[1] for obj in self.store.list(RUNS) if obj.key.endswith("/run.json")}
        return sorted(ids)

    def iter_runs(self, project: str | None = None) -> Iterator[RunRecord]:
        """Newest first."""
        for run_id in reversed(self.run_ids()):
            try:
                record = self.load(run_id)
            except (RunNotFound, StorageError):
                continue  # deleted meanwhile, or unreadable: listing must not die on one run
            if project is None or record.project == project:
                yield record

    def resolve(self, run_id_or_prefix: str) -> str:
        """Accept a full id or a unique prefix (like git), for typing convenience."""
        try:
            self.run_prefix(run_id_or_prefix)
        except Exception:
            raise RunNotFound(f"{run_id_or_prefix!r} is not a run id.") from None
        if self.store.exists(self.record_key(run_id_or_prefix)):
            return run_id_or_prefix
        matches = [i for i in self.run_ids() if i.startswith(run_id_or_prefix) or i.endswith(run_id_or_prefix)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFound(f"No run {run_id_or_prefix!r} in the run store at {self.store.location}.")
        raise RunNotFound(f"{run_id_or_prefix!r} matches {len(matches)} runs; give more of the id.")
