"""The run record and the run layout over any Store.

Layout inside a store (the same for a local folder and an Azure container)::

    runs/<run-id>/run.json          the record, replaced whole on every update
    runs/<run-id>/driver.log        the driver's stdout and stderr
    runs/<run-id>/outputs/...       the run's artifacts
    runs/<run-id>/metrics.jsonl     every point of every metric the script logged (metrics.py)
    snapshots/<digest>/manifest.json, snapshots/<digest>/COMPLETE
    objects/<ab>/<sha256>           snapshot file contents, stored once by digest
    shared/<workspace>/<project>/   the shared folder of cluster targets

Run ids start with a UTC timestamp so that sorting ids sorts runs by start time, and a run is
found by a key lookup rather than a scan.
"""
from __future__ import annotations

import enum
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from .errors import RunNotFound, RunRecordError, StorageError, UnsafePathError
from .liveness import ProcessIdentity
from .storage.base import Store, check_key

__all__ = ["RunStatus", "Artifact", "RunEnvironment", "RunRecord", "RunRepository", "new_run_id", "utc_now"]

RUNS = "runs"
log = logging.getLogger(__name__)


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
class RunEnvironment:
    """The Python dependencies a run shipped (issue 12): the environment's digest, what it was
    built for, and every package as ``name==version``."""

    digest: str
    python_version: str
    platform: str
    packages: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "packages": list(self.packages)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "RunEnvironment | None":
        if data is None:
            return None
        return cls(data["digest"], data["python_version"], data["platform"], tuple(data.get("packages", ())))


def _is_environment(value: Any) -> bool:
    return value is None or (
        isinstance(value, dict) and all(_is_text(value.get(k)) for k in ("digest", "python_version", "platform"))
        and _texts(value.get("packages", []))
    )


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
    # What the script logged (issue 10): the last value of each metric, and each param. The whole
    # series of every metric lives beside the record, in runs/<id>/metrics.jsonl.
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # Earlier runs' artifacts the args referenced (run:ID/outputs/x): each {"reference", "run",
    # "path", "resolved"}, so lineage shows where an input came from.
    inputs: tuple[dict[str, str], ...] = ()
    environment: RunEnvironment | None = None  # the Python dependencies it ran with; None: none declared

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["owner"] = self.owner.to_json() if self.owner else None
        data["args"] = list(self.args)
        data["artifacts"] = [asdict(a) for a in self.artifacts]
        data["failed_artifacts"] = list(self.failed_artifacts)
        data["inputs"] = [dict(item) for item in self.inputs]
        data["environment"] = self.environment.to_json() if self.environment else None
        return data

    @classmethod
    def from_json(cls, data: Any, *, where: str = "") -> "RunRecord":
        """A record from its JSON, every field's type checked (a hand-edited or corrupt record must
        not crash whoever reads it). Unknown keys are ignored: a newer sparkjobs may add some.

        Raises RunRecordError naming every problem; ``where`` says which record it is.
        """
        name = f"The run record {where}" if where else "The run record"
        if not isinstance(data, dict):
            raise RunRecordError(f"{name} must be a JSON object, not {_kind(data)}.")
        problems: list[str] = []
        values = {key: _field(data, key, check, what, default, problems) for key, (check, what, default) in _FIELDS.items()}
        problems += _artifact_problems(values["artifacts"])
        if problems:
            raise RunRecordError(f"{name} is malformed: " + "; ".join(problems) + ".")
        return cls(
            **{key: values[key] for key in ("id", "project", "target", "script", "started_at", "snapshot",
                                            "ended_at", "exit_code", "log", "error")},
            args=tuple(values["args"]),
            status=RunStatus(values["status"]),
            artifacts=tuple(Artifact(a["path"], a["size"], a["sha256"]) for a in values["artifacts"]),
            failed_artifacts=tuple(values["failed_artifacts"]),
            details=dict(values["details"]),
            owner=ProcessIdentity.from_json(values["owner"]),
            metrics=dict(values["metrics"]),
            params=dict(values["params"]),
            inputs=tuple(dict(item) for item in values["inputs"]),
            environment=RunEnvironment.from_json(values["environment"]),
        )

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


_REQUIRED = object()
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_key(value: Any) -> bool:
    try:
        return isinstance(value, str) and check_key(value) == value
    except UnsafePathError:
        return False


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


#: Each field of the record: (type check, what it must be, default when absent).
_FIELDS: dict[str, tuple[Callable[[Any], bool], str, Any]] = {
    "id": (lambda v: _is_key(v) and "/" not in v, "a run id", _REQUIRED),
    "project": (_is_text, "a string", _REQUIRED),
    "target": (_is_text, "a string", _REQUIRED),
    "script": (_is_text, "a string", _REQUIRED),
    "args": (_texts, "a list of strings", []),
    "status": (lambda v: v in {s.value for s in RunStatus}, "one of " + ", ".join(s.value for s in RunStatus), _REQUIRED),
    "started_at": (_is_text, "a string", _REQUIRED),
    "snapshot": (_is_text, "a string", ""),
    "ended_at": (lambda v: v is None or _is_text(v), "a string or null", None),
    "exit_code": (lambda v: v is None or _is_int(v), "a whole number or null", None),
    "artifacts": (lambda v: isinstance(v, list), "a list", []),
    "log": (lambda v: v is None or _is_key(v), "a storage key or null", None),
    "error": (lambda v: v is None or _is_text(v), "a string or null", None),
    "failed_artifacts": (_texts, "a list of strings", []),
    "details": (lambda v: isinstance(v, dict) and all(_is_text(x) for x in v.values()), "an object of strings", {}),
    "owner": (lambda v: v is None or isinstance(v, dict), "an object or null", None),
    "metrics": (lambda v: isinstance(v, dict), "an object", {}),
    "params": (lambda v: isinstance(v, dict), "an object", {}),
    "inputs": (lambda v: isinstance(v, list) and all(isinstance(i, dict) and all(_is_text(x) for x in i.values()) for i in v),
               "a list of objects of strings", []),
    "environment": (_is_environment, "null or an object with digest, python_version, platform and packages", None),
}


def _field(data: dict, key: str, check: Callable[[Any], bool], what: str, default: Any, problems: list[str]) -> Any:
    if key not in data:
        if default is _REQUIRED:
            problems.append(f"'{key}' is missing")
        return None if default is _REQUIRED else default
    value = data[key]
    if not check(value):
        problems.append(f"'{key}' must be {what}, not {_kind(value)}")
        return None
    return value


def _artifact_problems(items: list | None) -> list[str]:
    problems = []
    for number, item in enumerate(items or [], 1):
        where = f"'artifacts' item {number}"
        if not isinstance(item, dict):
            problems.append(f"{where} must be an object with path, size and sha256, not {_kind(item)}")
            continue
        path, size, sha = item.get("path"), item.get("size"), item.get("sha256")
        if not (_is_key(path) and path.startswith("outputs/")):
            problems.append(f"{where}: 'path' must be a path under outputs/ without '..', not {path!r}"[:200])
        if not (_is_int(size) and size >= 0):
            problems.append(f"{where}: 'size' must be a whole number of bytes, not {_kind(size)}")
        if not (isinstance(sha, str) and _SHA256.match(sha)):
            problems.append(f"{where}: 'sha256' must be 64 hex digits")
    return problems


def _kind(value: Any) -> str:
    """What a JSON value is, in words (never the value: it may be long or hostile)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def match_run_id(run_ids: Iterable[str], wanted: str, location: str) -> str:
    """The one run id that starts or ends with ``wanted`` (a prefix, or the random suffix).

    Raises RunNotFound when none or several do."""
    matches = [i for i in run_ids if i.startswith(wanted) or i.endswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFound(f"No run {wanted!r} in the run store at {location}.")
    raise RunNotFound(f"{wanted!r} matches {len(matches)} runs; give more of the id.")


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
        """The record of ``run_id``; RunRecordError if it is not a sound record of that run."""
        try:
            raw = self.store.get_bytes(self.record_key(run_id))
        except FileNotFoundError:
            raise RunNotFound(f"No run {run_id!r} in the run store at {self.store.location}.") from None
        return self._parse(run_id, raw)

    def reload(self, run_id: str, stamp: str | None) -> tuple[str, RunRecord | RunRecordError] | None:
        """(its stamp, the record or why it is not sound) of ``run_id``, or None while the record's
        stamp is still ``stamp`` (None: not read before). One request on Blob, content and ETag."""
        try:
            changed = self.store.get_if_changed(self.record_key(run_id), stamp)
        except FileNotFoundError:
            raise RunNotFound(f"No run {run_id!r} in the run store at {self.store.location}.") from None
        if changed is None:
            return None
        raw, new_stamp = changed
        try:
            return new_stamp, self._parse(run_id, raw)
        except RunRecordError as exc:
            return new_stamp, exc

    def _parse(self, run_id: str, raw: bytes) -> RunRecord:
        where = f"{self.record_key(run_id)} in the run store at {self.store.location}"
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise RunRecordError(f"The run record {where} is not valid UTF-8.") from None
        except ValueError:
            raise RunRecordError(f"The run record {where} is not valid JSON; it may have been cut short.") from None
        record = RunRecord.from_json(data, where=where)
        if record.id != run_id:
            raise RunRecordError(f"The run record {where} says it is run {record.id}: a record must be in its own run's folder.")
        return record

    def run_ids(self) -> list[str]:
        ids = set()
        for obj in self.store.list(RUNS):
            parts = obj.key.split("/")
            if len(parts) == 3 and parts[2] == "run.json":
                ids.add(parts[1])
        return sorted(ids)

    def iter_runs(self, project: str | None = None) -> Iterator[RunRecord]:
        """Newest first. A record that cannot be read is skipped with one warning naming it:
        one broken run must not hide all the others."""
        for run_id in reversed(self.run_ids()):
            try:
                record = self.load(run_id)
            except RunNotFound:
                continue  # deleted meanwhile
            except RunRecordError as exc:  # its message names the record
                log.warning("Warning: %s It is left out.", exc)
                continue
            except StorageError as exc:
                log.warning("Warning: run %s is left out: %s", run_id, exc)
                continue
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
        return match_run_id(self.run_ids(), run_id_or_prefix, self.store.location)
