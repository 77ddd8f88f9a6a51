"""One run from start to record: settings, snapshot, submit, stream, collect, record.

Order matters for "nothing half-written": everything that can fail on bad input (config,
script path, snapshot cap, Java) is checked before a run record exists.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Framework, RunSettings, TargetType, load_run_settings, snapshot_cap_for
from .errors import ArtifactTransferError, ConfigError, SparkJobsError
from .runs import Artifact, RunRecord, RunRepository, RunStatus, new_run_id, utc_now
from .snapshot import Snapshot, build_snapshot, cache_path_for
from .snapshot_store import SnapshotStore
from .spark_env import check_java, read_spark_defaults, resource_dir
from .targets import make_target
from .credentials import redact
from .targets.base import Execution, Outcome, SubmitPlan, Target

if TYPE_CHECKING:
    from .service import RunObserver, RunRequest, SparkJobs

__all__ = ["execute_run", "resolve_argv", "merged_spark_conf"]

_SECRET_KEY = re.compile(r"(?i)^(spark\.hadoop\.)?fs\.azure\.(account\.key|sas)\.|secret|password")


def resolve_argv(settings: RunSettings, script: str | None, args: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """Apply the runconfig's ArgumentVector: ``$file`` is the script named on the command line.
    Without ``$file`` the vector's first item is the script, and naming another is refused."""
    vector = list(settings.argument_vector)
    if "$file" in vector:
        if not script:
            raise ConfigError("Name the script to run, e.g. 'sparkjobs run -c local train.py'.")
        vector = [script if item == "$file" else item for item in vector]
    elif script and script != vector[0]:
        raise ConfigError(
            f"ArgumentVector in aml_config/{settings.name}.runconfig has no $file, so it names the script itself "
            f"({vector[0]}); run without a script name, or put \"$file\" in ArgumentVector."
        )
    return vector[0], tuple(vector[1:]) + tuple(args)


def _script_in_project(settings: RunSettings, script: str, snapshot: Snapshot) -> str:
    root = settings.project.root
    full = (root / script).resolve() if not Path(script).is_absolute() else Path(script).resolve()
    if root not in full.parents:
        raise ConfigError(f"The script {script} is outside the project {root}.")
    relative = full.relative_to(root).as_posix()
    if not full.is_file():
        raise ConfigError(f"The script {relative} does not exist in {root}.")
    if relative not in {e.path for e in snapshot.entries}:
        raise ConfigError(f"The script {relative} is excluded from the snapshot by .amlignore or .gitignore.")
    return relative


def merged_spark_conf(settings: RunSettings) -> dict[str, str]:
    """spark-conf/<type>.conf, then SparkDependenciesFile's configuration, then compute conf."""
    conf = read_spark_defaults(resource_dir("spark-conf") / f"{settings.compute.type.value}.conf")
    conf.update(settings.dependencies.configuration)
    conf.update(settings.compute.conf)
    leaked = sorted(k for k in conf if _SECRET_KEY.search(k))
    if leaked:
        raise ConfigError(
            f"Spark conf may not carry secrets ({', '.join(leaked)}): conf is logged by Livy and shown in "
            "the Spark UI. Put storage keys in the credentials file; sparkjobs attaches them at run time."
        )
    return conf


def _job_env(settings: RunSettings, run_id: str, outputs: str, shared: str) -> dict[str, str]:
    env = dict(settings.environment)
    env.update(
        {
            "SPARKJOBS_RUN_ID": run_id,
            "SPARKJOBS_PROJECT": settings.project.name,
            "SPARKJOBS_OUTPUTS": outputs,
            "SPARKJOBS_SHARED": shared,
            # Ends with a separator: Workbench scripts do os.environ[...] + 'file.txt'.
            "AZUREML_NATIVE_SHARE_DIRECTORY": shared,
        }
    )
    return env


def _last_snapshot_file(service: "SparkJobs", store_location: str, root: Path) -> Path:
    return cache_path_for(service.home / "cache" / "last-snapshot", Path(f"{store_location}|{root}"))


def _save_snapshot(service: "SparkJobs", repo: RunRepository, snapshot: Snapshot, observer: "RunObserver") -> None:
    marker = _last_snapshot_file(service, repo.store.location, snapshot.root)
    try:
        known = json.loads(marker.read_text())["digest"]
    except (OSError, ValueError, KeyError):
        known = None
    if known == snapshot.digest and SnapshotStore(repo.store).is_complete(known):
        return
    progress = observer.progress("snapshot", snapshot.total_size)
    report = SnapshotStore(repo.store).save(snapshot, known_complete=known, progress=progress)
    if not report.already_complete:
        observer.on_event(f"Snapshot {snapshot.digest[:12]}: stored {report.uploaded_files} new files ({report.uploaded_bytes} bytes).")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"digest": snapshot.digest}))


def prepare(service: "SparkJobs", request: "RunRequest", observer: "RunObserver") -> tuple[RunRepository, SubmitPlan, Target]:
    settings = load_run_settings(request.project_dir, request.config, service.environ)
    script, args = resolve_argv(settings, request.script, request.args)
    target = make_target(settings.compute, service.environ)
    if request.detach and not target.detachable:
        raise ConfigError(f"--detach works with cluster targets only, not '{settings.compute.type.value}'.")
    conf = merged_spark_conf(settings)
    if settings.framework is Framework.PYSPARK and settings.compute.type is not TargetType.CLUSTER:
        check_java(service.environ, service.home / "cache")
    repo = RunRepository(service.history_store(settings.project))
    excludes = []
    if service.home == settings.project.root:
        raise ConfigError(f"SPARKJOBS_HOME ({service.home}) may not be the project folder itself.")
    if settings.project.root in service.home.parents:  # a run store inside the project
        excludes.append("/" + service.home.relative_to(settings.project.root).as_posix() + "/")
    snapshot = build_snapshot(
        settings.project.root,
        cap_bytes=snapshot_cap_for(settings),
        cache_file=cache_path_for(service.home / "cache" / "digests", settings.project.root),
        extra_excludes=excludes,
        always_include=settings.config_files,
    )
    script = _script_in_project(settings, script, snapshot)
    run_id = new_run_id()
    workdir = service.home / "work" / run_id
    locations = target.locations(settings, workdir, run_id)
    env = _job_env(settings, run_id, locations.outputs, locations.shared)
    secrets = target.hadoop_secrets(settings)
    plan = SubmitPlan(run_id, settings, snapshot, script, args, env, conf, workdir, secrets)
    return repo, plan, target


class _LogTee:
    """Sends each line to the observer and to the run's log file, with secrets masked."""

    def __init__(self, path: Path, secrets: list[str], observer: "RunObserver") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "w", encoding="utf-8")
        self._secrets = [s for s in secrets if s]
        self._observer = observer
        self._observer_gone = False

    def __call__(self, line: str) -> None:
        if self._secrets:
            line = redact(line, self._secrets)
        self._handle.write(line + "\n")
        self._handle.flush()
        if self._observer_gone:
            return
        try:
            self._observer.on_line(line)
        except BrokenPipeError:
            # `sparkjobs run | head` closed our stdout: the run goes on, and its log is kept.
            self._observer_gone = True

    def close(self) -> None:
        self._handle.close()


def _stream_until_done(execution: Execution, tee: _LogTee, observer: "RunObserver") -> bool:
    """Stream output; on Ctrl-C ask the shell whether to kill or detach. True means detached."""
    try:
        execution.stream(tee)
        return False
    except KeyboardInterrupt:
        from .service import Interrupt

        choice = observer.on_interrupt()
        if choice == Interrupt.DETACH and execution.detachable:
            return True
        observer.on_event("Stopping the job...")
        _without_sigint(execution.kill)
        _without_sigint(lambda: execution.stream(tee))
        return False


def _without_sigint(action) -> None:
    """A second Ctrl-C must not leave the run recorded as running forever."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        action()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        action()
    finally:
        signal.signal(signal.SIGINT, previous)


def _collect_outputs(repo: RunRepository, run_id: str, outcome: Outcome, observer: "RunObserver", workdir: Path):
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
            digest = known.get(relative) or _store_sha256(repo.store, obj.key)
            artifacts.append(Artifact(obj.key[len(run_prefix) + 1 :], obj.size, digest))
        return tuple(artifacts), (), None
    if remote is not None:  # the cluster's storage is not the run history: bring them over
        local = local or workdir / "outputs-from-cluster"
        remote.download_tree(prefix, local)
    if not (local and local.is_dir()):
        return (), (), None
    files = [p for p in local.rglob("*") if p.is_file()]
    progress = observer.progress("outputs", sum(p.stat().st_size for p in files)) if files else None
    failed: tuple[str, ...] = ()
    error = None
    try:
        results = repo.store.upload_tree(local, prefix, progress=progress)
    except ArtifactTransferError as exc:
        results = exc.succeeded
        failed = tuple(sorted(k[len(run_prefix) + 1 :] for k in exc.failed))
        error = f"{len(failed)} artifacts could not be stored: {', '.join(failed)}."
    artifacts = tuple(Artifact(r.key[len(run_prefix) + 1 :], r.size, r.sha256) for r in results)
    return artifacts, failed, error


def _store_sha256(store, key: str) -> str:
    import hashlib

    return hashlib.sha256(store.get_bytes(key)).hexdigest()


def execute_run(service: "SparkJobs", request: "RunRequest", observer: "RunObserver") -> RunRecord:
    repo, plan, target = prepare(service, request, observer)
    _save_snapshot(service, repo, plan.snapshot, observer)
    settings = plan.settings
    record = RunRecord(
        id=plan.run_id,
        project=settings.project.name,
        target=settings.compute.name,
        script=plan.script,
        args=plan.args,
        status=RunStatus.RUNNING,
        started_at=utc_now(),
        snapshot=plan.snapshot.digest,
        log=repo.log_key(plan.run_id),
        details={"runconfig": settings.name},
    )
    repo.save(record)
    observer.on_event(f"Run {record.id} on {settings.compute.name} ({settings.compute.type.value}).")
    tee = _LogTee(plan.workdir / "driver.log", list(plan.hadoop_secrets.values()), observer)
    try:
        try:
            execution = target.submit(plan)
        except SparkJobsError as exc:
            tee.close()
            repo.save(record.finished(RunStatus.FAILED, None, error=str(exc)))
            raise
        record = _merge_details(record, execution)
        repo.save(record)
        if request.detach:
            observer.on_event(f"Submitted. Watch it with: sparkjobs runs attach {record.id}")
            return record
        try:
            if _stream_until_done(execution, tee, observer):
                observer.on_event(f"Detached. Resume watching with: sparkjobs runs attach {record.id}")
                return record
            outcome = execution.wait()
        except Exception as exc:
            _abandon(repo, record, execution, exc)
            raise
    finally:
        tee.close()
    return _finish(repo, record, outcome, plan.workdir, observer)


def _abandon(repo: RunRepository, record: RunRecord, execution: Execution, exc: Exception) -> None:
    """sparkjobs can no longer watch the job. A local job nobody watches is stopped; a cluster
    batch keeps running and stays attachable. Either way the record says what happened."""
    if execution.detachable:
        repo.save(replace(record, error=f"sparkjobs stopped watching: {exc}"))
        return
    _without_sigint(execution.kill)
    repo.save(record.finished(RunStatus.FAILED, None, error=f"sparkjobs stopped watching and killed the job: {exc}"))


def _merge_details(record: RunRecord, execution: Execution) -> RunRecord:
    details = {k: v for k, v in dict(execution.details).items() if k != "pid"}
    return replace(record, details={**record.details, **details})


def _finish(repo: RunRepository, record: RunRecord, outcome: Outcome, workdir: Path, observer: "RunObserver") -> RunRecord:
    def finish() -> RunRecord:
        artifacts, failed, artifact_error = _collect_outputs(repo, record.id, outcome, observer, workdir)
        log_file = workdir / "driver.log"
        if log_file.exists():
            repo.store.put_file(repo.log_key(record.id), log_file)
        status = outcome.status
        error = outcome.error
        if failed:
            error = f"{error} {artifact_error}" if error else artifact_error
            if status is RunStatus.COMPLETED:
                status = RunStatus.FAILED
        final = record.finished(
            status,
            outcome.exit_code,
            artifacts=artifacts,
            failed_artifacts=failed,
            error=error,
            details={**record.details, **dict(outcome.details)},
        )
        repo.save(final)
        if not failed:  # keep the working copy when something could not be stored
            shutil.rmtree(workdir, ignore_errors=True)
        return final

    result: list[RunRecord] = []
    _without_sigint(lambda: result.append(finish()))
    return result[0]


def reattach(service: "SparkJobs", project_dir: Path | None, run_id: str, observer: "RunObserver") -> RunRecord:
    """Resume watching a run whose target can be reattached to (Livy batches)."""
    repo = service.repository(project_dir)
    record = repo.load(repo.resolve(run_id))
    if record.status.is_terminal:
        return record
    settings = load_run_settings(project_dir or Path.cwd(), record.details.get("runconfig", record.target), service.environ)
    target = make_target(settings.compute, service.environ)
    resume = getattr(target, "reattach", None)
    if resume is None:
        raise ConfigError(f"Run {record.id} ran on the {settings.compute.type.value} target, which cannot be reattached.")
    execution = resume(record, settings)
    tee = _LogTee(service.home / "work" / record.id / "driver.log", [], observer)
    try:
        if _stream_until_done(execution, tee, observer):
            return record
        outcome = execution.wait()
    finally:
        tee.close()
    return _finish(repo, record, outcome, service.home / "work" / record.id, observer)
