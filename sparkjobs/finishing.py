"""The one place a run ends: every exit path of ``run``, ``runs attach`` and ``runs recover``
comes here, so no path can leave a record saying ``running``.

Finishing stores what can be stored (outputs, the driver log), records the final status with
its reason, and when something cannot be stored says where it was kept instead: the run's
work folder, with the final record beside it, which ``sparkjobs runs recover`` uploads later.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .masking import redact
from .errors import ArtifactTransferError, SparkJobsError, StorageError
from .metrics import Logged, left_out, read_logged, store_series
from .runs import Artifact, RunRecord, RunRepository, RunStatus
from .targets.base import Outcome
from .wording import count

if TYPE_CHECKING:
    from .service import RunObserver

__all__ = ["RunFinisher", "PENDING_RECORD", "DRIVER_LOG"]

#: The final record, kept in the work folder when the run store could not take it.
PENDING_RECORD = "run.json"
DRIVER_LOG = "driver.log"


class RunFinisher:
    def __init__(self, repo: RunRepository, record: RunRecord, workdir: Path, observer: "RunObserver",
                 secrets: Iterable[str] = ()) -> None:
        self.repo = repo
        self._secrets = tuple(secrets)
        self.record = record
        self.workdir = workdir
        self.observer = observer
        self._final: RunRecord | None = None

    def update(self, record: RunRecord) -> None:
        """Save an intermediate state of a running run (target details, owner)."""
        self.record = record
        self.repo.save(self._masked(record))

    def _masked(self, record: RunRecord) -> RunRecord:
        """Error texts quote what failed, and a failure may quote a secret: never store one."""
        if not self._secrets:
            return record
        return replace(
            record,
            args=tuple(redact(arg, self._secrets) for arg in record.args),
            error=redact(record.error, self._secrets) if record.error else record.error,
            metrics={k: redact(v, self._secrets) if isinstance(v, str) else v for k, v in record.metrics.items()},
            params={k: redact(v, self._secrets) if isinstance(v, str) else v for k, v in record.params.items()},
        )

    def finish(self, outcome: Outcome) -> RunRecord:
        """Store what can be stored and record the end; called once, later calls return the same."""
        if self._final is not None:
            return self._final
        # How the job ended, before anything is stored: what 'runs recover' finishes from if
        # the store cannot take the record now.
        decided = self.record.finished(
            outcome.status,
            outcome.exit_code,
            error=outcome.error,
            details={**self.record.details, **dict(outcome.details)},
            **({"ended_at": outcome.ended_at} if outcome.ended_at else {}),
        )
        problems: list[str] = []
        logged = self._read_logged(outcome, problems)
        if logged is not None:  # nothing found keeps what a record kept for 'runs recover' had
            decided = replace(decided, metrics=logged.last_values or decided.metrics, params=logged.params or decided.params)
        artifacts, failed = self._store_outputs(outcome, problems)
        self._store_log(problems)
        self._store_series(logged, problems)
        decided = self._masked(decided)
        final = replace(decided, artifacts=artifacts, failed_artifacts=failed)
        if problems:
            kept = (
                f" What was not stored is kept in {self.workdir}; 'sparkjobs runs recover {decided.id}' stores it "
                "once the run store can take it."
            )
            status = RunStatus.FAILED if decided.status is RunStatus.COMPLETED else decided.status
            final = replace(final, status=status, error=" ".join(filter(None, [decided.error, *problems])) + kept)
            self._keep_for_recovery(decided)
        self._final = final
        self._save_final(final, decided)
        if not problems:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return final

    def _keep_for_recovery(self, decided: RunRecord) -> str:
        """Keep how the job ended beside what was not stored; say where, or why not."""
        where = self.workdir / PENDING_RECORD
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            where.write_text(json.dumps(decided.to_json(), indent=2))
        except OSError as exc:
            return f"nor could it be kept locally ({exc.strerror or exc})"
        return f"it is kept in {where}"

    def _store_outputs(self, outcome: Outcome, problems: list[str]) -> tuple[tuple[Artifact, ...], tuple[str, ...]]:
        try:
            artifacts, failed, error = collect_outputs(self.repo, self.record.id, outcome, self.observer, self.workdir)
        except (SparkJobsError, OSError) as exc:
            problems.append(f"The outputs could not be stored: {_sentence(exc)}")
            return (), ()
        if error:
            problems.append(error)
        return artifacts, failed

    def _read_logged(self, outcome: Outcome, problems: list[str]) -> Logged | None:
        """What the script logged, from the work folder or the cluster's storage."""
        try:
            logged = read_logged(self.repo, self.record.id, self.workdir, outcome.outputs_store)
        except StorageError as exc:
            problems.append(_sentence(exc))
            return None
        note = left_out(logged)
        if note:
            self.observer.on_event(note)
        return logged

    def _store_series(self, logged: Logged | None, problems: list[str]) -> None:
        if logged is None:
            return
        if self._secrets:  # a script may log what it should not: text is masked as in the log
            logged = replace(logged, series={
                name: [replace(p, value=redact(p.value, self._secrets)) if isinstance(p.value, str) else p for p in points]
                for name, points in logged.series.items()
            })
        try:
            store_series(self.repo, self.record.id, logged)
        except (SparkJobsError, OSError) as exc:
            problems.append(f"The logged metrics could not be stored: {_sentence(exc)}")

    def _store_log(self, problems: list[str]) -> None:
        log_file = self.workdir / DRIVER_LOG
        if not log_file.exists():
            return
        try:
            self.repo.store.put_file(self.repo.log_key(self.record.id), log_file)
        except (SparkJobsError, OSError) as exc:
            problems.append(f"The driver log could not be stored: {_sentence(exc)}")

    def _save_final(self, final: RunRecord, decided: RunRecord) -> None:
        try:
            self.repo.save(final)
            return
        except (SparkJobsError, OSError) as exc:
            reason = _sentence(exc)
        kept = self._keep_for_recovery(decided)
        raise StorageError(
            f"Run {decided.id} {decided.status.value}, but its record could not be stored in "
            f"{self.repo.store.location} ({reason.rstrip('.')}); {kept}. Run 'sparkjobs runs recover {decided.id}' "
            "once the run store can be written again."
        )


def pending_record(workdir: Path) -> RunRecord | None:
    """A final record that could not be stored when its run ended."""
    try:
        return RunRecord.from_json(json.loads((workdir / PENDING_RECORD).read_text()))
    except (OSError, ValueError, SparkJobsError):
        return None


def outcome_of_record(record: RunRecord, local_outputs: Path | None) -> Outcome:
    """Finish a run again from a record that was decided but not stored."""
    return Outcome(record.status, record.exit_code, record.error, local_outputs, ended_at=record.ended_at)


def collect_outputs(repo: RunRepository, run_id: str, outcome: Outcome, observer: "RunObserver", workdir: Path):
    """Upload a local outputs folder (also after a failed run) and describe what was stored.

    With no local folder (cluster targets write straight to storage) the store is listed.
    """
    run_prefix = repo.run_prefix(run_id)
    prefix = repo.outputs_prefix(run_id)
    local = outcome.local_outputs
    remote = outcome.outputs_store
    if remote is not None and remote.location == repo.store.location:
        known = outcome.output_digests
        artifacts = []
        for obj in repo.store.list(prefix):
            relative = obj.key[len(prefix) + 1 :]
            # Hashed by the job as it copied the file; anything it wrote some other way is read back.
            digest = known.get(relative) or hashlib.sha256(repo.store.get_bytes(obj.key)).hexdigest()
            artifacts.append(Artifact(obj.key[len(run_prefix) + 1 :], obj.size, digest))
        return tuple(artifacts), (), None
    if remote is not None:  # the cluster's storage is not the run history: bring them over
        local = local or workdir / "outputs-from-cluster"
        remote.download_tree(prefix, local)
    if not (local and (local.is_dir() or local.is_symlink())):  # a linked outputs is refused below
        return (), (), None
    files = [] if local.is_symlink() else [p for p in local.rglob("*") if p.is_file() and not p.is_symlink()]
    progress = observer.progress("outputs", sum(p.stat().st_size for p in files)) if files else None
    failed: tuple[str, ...] = ()
    error = None
    try:
        results = repo.store.upload_tree(local, prefix, progress=progress)
    except ArtifactTransferError as exc:
        results = exc.succeeded
        reasons = {k[len(run_prefix) + 1 :]: why for k, why in exc.failed.items()}
        failed = tuple(sorted(reasons))
        shown = "; ".join(f"{k} ({reasons[k]})" for k in failed[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        error = f"{count(len(failed), 'artifact')} could not be stored: {shown}{more}."
    artifacts = tuple(Artifact(r.key[len(run_prefix) + 1 :], r.size, r.sha256) for r in results)
    return artifacts, failed, error


def _sentence(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return text if text.endswith(".") else text + "."
