"""One run from start to record: settings, snapshot, submit, stream, collect, record.

Order matters for "nothing half-written": everything that can fail on bad input (config,
script path, snapshot cap, Java) is checked before a run record exists.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Framework, RunSettings, TargetType, load_run_settings, snapshot_cap_for
from .errors import ConfigError, JobLost, RunNotFound, SparkJobsError, StorageError, TargetError
from .finishing import DRIVER_LOG, RunFinisher, outcome_of_record, pending_record
from .job_output import is_noise
from .liveness import ProcessIdentity
from .run_inputs import discard_inputs, resolve_inputs, stage_inputs
from .runs import RunEnvironment, RunRecord, RunRepository, RunStatus, new_run_id, utc_now
from .snapshot import Snapshot, build_snapshot, cache_path_for
from .snapshot_store import SnapshotStore
from .spark_env import check_java, read_spark_defaults, resource_dir
from .targets import make_target
from .attached_storage import attached_storage_conf
from .credentials import known_secrets, redact
from .stopping import StopRequests
from .wording import count, size
from .targets.base import Execution, Outcome, SubmitPlan, Target
from .targets.local import SNAPSHOT_DIR
from .targets.submit_process import EXIT_FILE, outcome_from_exit, read_exit_file

if TYPE_CHECKING:
    from .environments import BuiltEnvironment
    from .service import RunObserver, RunRequest, SparkJobs

__all__ = ["execute_run", "reattach", "recover", "resolve_argv", "merged_spark_conf"]

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


def _named_script(root: Path, base: Path | None, script: str | None) -> str | None:
    """The script named on the command line, relative to the project: a relative name starts
    from ``base`` (the current folder, in a subfolder of the project) and must stay inside."""
    if not script:
        return script
    full = ((base or root) / script).resolve()
    if root not in full.parents:
        raise ConfigError(f"The script {script} is outside the project {root}.")
    return full.relative_to(root).as_posix()


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
        observer.on_event(
            f"Snapshot {snapshot.digest[:12]}: stored {count(report.uploaded_files, 'new file')} ({size(report.uploaded_bytes)})."
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"digest": snapshot.digest}))


def prepare(service: "SparkJobs", request: "RunRequest", observer: "RunObserver", *, dry_run: bool = False
            ) -> tuple[RunRepository, SubmitPlan, Target]:
    settings = load_run_settings(request.project_dir, request.config, service.environ)
    if request.rerun is None:
        named = _named_script(settings.project.root, request.script_base, request.script)
        script, args = resolve_argv(settings, named, request.args)
    else:  # the command line is already whole
        script, args = request.script or "", request.args
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
    snapshot = request.rerun.snapshot if request.rerun else build_snapshot(
        settings.project.root,
        cap_bytes=snapshot_cap_for(settings),
        cache_file=cache_path_for(service.home / "cache" / "digests", settings.project.root),
        extra_excludes=excludes,
        always_include=settings.config_files,
    )
    script = _script_in_project(settings, script, snapshot)
    environment = _environment(service, settings, observer, dry_run)
    run_id = new_run_id()
    workdir = service.home / "work" / run_id
    locations = target.locations(settings, workdir, run_id)
    env = _job_env(settings, run_id, locations.outputs, locations.shared)
    inputs = resolve_inputs(repo, settings.project.name, args, run_id=run_id, workdir=workdir,
                            job_storage=lambda: target.job_storage(settings))
    # The run's own storage wins over an attachStorage entry for the same account.
    secrets = {**_attached(service, settings), **target.hadoop_secrets(settings)}
    masked = tuple(dict.fromkeys((*known_secrets(service.environ), *secrets.values())))
    plan = SubmitPlan(run_id, settings, snapshot, script, inputs.args, env, conf, workdir, secrets, masked, inputs=inputs,
                      environment=environment)
    return repo, plan, target


def _environment(service: "SparkJobs", settings: RunSettings, observer: "RunObserver", dry_run: bool
                 ) -> "BuiltEnvironment | None":
    """The run's Python dependencies, built here (or found built) before anything is written;
    a dry run builds nothing and shows the environment only when it is already built."""
    if not (settings.requirements_file or settings.conda_dependencies_file):
        return None  # the common case loads none of the environment modules
    from .environments.build import environment_for, known_environment

    if dry_run:
        return known_environment(settings, service.home)
    return environment_for(settings, service.home, observer.on_event)


def _run_environment(plan: SubmitPlan) -> RunEnvironment | None:
    built = plan.environment
    if built is None:
        return None
    return RunEnvironment(built.digest, built.python_version, built.platform,
                          tuple(f"{p.name}=={p.version}" for p in built.packages))


def _attached(service: "SparkJobs", settings: RunSettings) -> dict[str, str]:
    """The keys of the compute's attachStorage accounts, from the user's credentials."""
    if not settings.compute.attach_storage:
        return {}
    return attached_storage_conf(settings.compute.attach_storage, service.environ, settings.project.root)


class _LogTee:
    """Sends each line to the observer and to the run's log file, with secrets masked."""

    def __init__(self, path: Path, secrets: list[str], observer: "RunObserver") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "w", encoding="utf-8")
        self._secrets = [s for s in secrets if s]
        self._observer = observer
        self._observer_gone = False

    def __call__(self, line: str) -> None:
        if is_noise(line):
            return
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


def _stream_until_done(execution: Execution, tee: _LogTee, observer: "RunObserver", stops: StopRequests) -> bool:
    """Stream output; on Ctrl-C ask the shell whether to kill or detach. True means detached."""
    try:
        with stops.interruptible():
            execution.stream(tee)
        return False
    except KeyboardInterrupt:
        pass
    from .service import Interrupt

    choice = Interrupt.KILL
    if execution.detachable:
        with stops.interruptible(pending=False):  # a second Ctrl-C at the prompt means kill
            try:
                choice = observer.on_interrupt()
            except KeyboardInterrupt:
                choice = Interrupt.KILL
    if choice == Interrupt.DETACH:
        return True
    observer.on_event("Stopping the job (again to kill it at once)...")
    execution.kill()
    execution.stream(tee)  # what the job printed while stopping
    return False


def execute_run(service: "SparkJobs", request: "RunRequest", observer: "RunObserver") -> RunRecord:
    stops = StopRequests()
    with stops.installed():
        with stops.interruptible():  # nothing is recorded yet, so stopping leaves nothing behind
            repo, plan, target = prepare(service, request, observer)
            if request.rerun is None:
                _save_snapshot(service, repo, plan.snapshot, observer)
            elif not SnapshotStore(repo.store).is_complete(plan.snapshot.digest):  # rerun into another store
                SnapshotStore(repo.store).save(plan.snapshot)
            if plan.environment is not None:
                from .environments.build import store_environment

                store_environment(plan.environment, repo.store)
            if plan.inputs is not None:
                stage_inputs(repo.store, plan.inputs, observer.on_event)
        settings = plan.settings
        details = {"runconfig": settings.name, **({"rerun_of": request.rerun.of} if request.rerun else {})}
        record = RunRecord(
            id=plan.run_id,
            project=settings.project.name,
            target=settings.compute.name,
            script=plan.script,
            args=plan.inputs.typed_args if plan.inputs else plan.args,
            status=RunStatus.RUNNING,
            started_at=utc_now(),
            snapshot=plan.snapshot.digest,
            log=repo.log_key(plan.run_id),
            details=details,
            owner=ProcessIdentity.current(),
            inputs=plan.inputs.records if plan.inputs else (),
            environment=_run_environment(plan),
        )
        try:
            repo.save(record)
        except BaseException:
            discard_inputs(plan.inputs)  # no record, so nothing of the run may stay behind
            raise
        observer.on_event(f"Run {record.id} on {settings.compute.name} ({settings.compute.type.value}).")
        finisher = RunFinisher(repo, record, plan.workdir, observer, plan.masked)
        return _watch(finisher, observer, stops, lambda: target.submit(plan), detach=request.detach,
                      secrets=list(plan.masked))


def _watch(finisher: RunFinisher, observer: "RunObserver", stops: StopRequests, start, *, detach: bool,
           secrets: list[str]) -> RunRecord:
    """Start (or resume) watching a job and finish its run on every path out."""
    run_id = finisher.record.id
    tee = _LogTee(finisher.workdir / DRIVER_LOG, secrets, observer)
    execution: Execution | None = None
    try:
        try:
            execution = start()
        except SparkJobsError as exc:
            return _finish_and_raise(finisher, Outcome(RunStatus.FAILED, None, str(exc)), exc)
        stops.escalate_with(execution.kill_now)
        finisher.update(_merge_details(finisher.record, execution))
        if detach:
            return _leave_running(finisher, observer, f"Submitted. Watch it with: sparkjobs runs attach {run_id}")
        if stops.requested:  # asked to stop while the job was being started
            execution.kill()
            execution.stream(tee)
        elif _stream_until_done(execution, tee, observer, stops):
            return _leave_running(finisher, observer, f"Detached. Resume watching with: sparkjobs runs attach {run_id}")
        outcome = execution.wait()
    except KeyboardInterrupt:
        outcome = _stopped(execution)
    except BaseException as exc:
        if execution is not None and execution.detachable and isinstance(exc, Exception):
            # The batch runs on without us and stays attachable; the record says why we left.
            finisher.update(replace(finisher.record, error=f"sparkjobs stopped watching: {exc}"))
            raise
        outcome = _abandoned(execution, exc)
        if isinstance(exc, OSError):  # a full disk or a vanished folder: say it as a sentence
            exc = TargetError(outcome.error or str(exc))
        return _finish_and_raise(finisher, outcome, exc)
    finally:
        tee.close()
    return finisher.finish(outcome)


def _stopped(execution: Execution | None) -> Outcome:
    if execution is not None:
        execution.kill()
        return execution.wait()
    return Outcome(RunStatus.KILLED, None, "Stopped by the user before the job started.")


def _abandoned(execution: Execution | None, exc: BaseException) -> Outcome:
    """sparkjobs can no longer watch the job: a local job nobody watches is stopped."""
    if execution is not None:
        execution.kill()
        reason = f"sparkjobs stopped watching and killed the job: {_describe(exc)}"
    else:
        reason = f"The job could not be started: {_describe(exc)}"
    return Outcome(RunStatus.FAILED, None, reason)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}." if exc.filename else ".")
    return str(exc) if isinstance(exc, SparkJobsError) else f"{type(exc).__name__}: {exc}"


def _finish_and_raise(finisher: RunFinisher, outcome: Outcome, exc: BaseException) -> RunRecord:
    try:
        finisher.finish(outcome)
    except StorageError as storage:  # the original error is the one to raise; say this one too
        finisher.observer.on_event(str(storage))
    raise exc


def _leave_running(finisher: RunFinisher, observer: "RunObserver", message: str) -> RunRecord:
    """A detached batch runs on: nobody owns the run until ``runs attach`` does."""
    finisher.update(replace(finisher.record, owner=None))
    observer.on_event(message)
    return finisher.record


def _merge_details(record: RunRecord, execution: Execution) -> RunRecord:
    details = {k: v for k, v in dict(execution.details).items() if k != "pid"}
    return replace(record, details={**record.details, **details})


def reattach(service: "SparkJobs", project_dir: Path | None, run_id: str, observer: "RunObserver") -> RunRecord:
    """Resume watching a run whose target can be reattached to (Livy batches)."""
    repo = service.repository(project_dir)
    record = repo.load(repo.resolve(run_id))
    if record.status.is_terminal:
        return record
    if project_dir is None:
        raise ConfigError(f"Run {record.id} can only be watched from its project, which has its configuration; "
                          "run 'sparkjobs runs attach' there, or name it with --project DIR.")
    settings = load_run_settings(project_dir, record.details.get("runconfig", record.target), service.environ)
    target = make_target(settings.compute, service.environ)
    resume = getattr(target, "reattach", None)
    if resume is None or not record.attachable:
        raise ConfigError(
            f"Run {record.id} ran on the {settings.compute.type.value} target, which cannot be reattached; "
            f"'sparkjobs runs recover {record.id}' settles it if its sparkjobs process is gone."
        )
    masked = [*known_secrets(service.environ), *_attached(service, settings).values(),
              *target.hadoop_secrets(settings).values()]
    owned = replace(record, owner=ProcessIdentity.current())
    finisher = RunFinisher(repo, owned, service.home / "work" / record.id, observer, masked)
    try:
        execution = resume(record, settings)  # refuses a batch that is not this run's
    except JobLost as lost:  # never to be watched again: a record left running would stay so
        return _finish_and_raise(finisher, Outcome(RunStatus.FAILED, None, lost.outcome), lost)
    stops = StopRequests()
    with stops.installed():
        return _watch(finisher, observer, stops, lambda: execution, detach=False, secrets=masked)


def recover(service: "SparkJobs", project_dir: Path | None, run_id: str, observer: "RunObserver") -> RunRecord:
    """Settle a run whose sparkjobs process died: store what its work folder still holds and
    record how the job really ended (the supervisor wrote that down), or that nobody knows."""
    repo = service.repository(project_dir)
    try:
        record = repo.load(repo.resolve(run_id)).as_seen_now()
    except RunNotFound:
        # The store lost the run (or never took it): a record kept locally still settles it.
        repo.run_prefix(run_id)  # a run id, never a path
        record = pending_record(service.home / "work" / run_id)
        if record is None:
            raise
    if record.status is RunStatus.RUNNING:
        if record.attachable:
            raise ConfigError(f"Run {record.id} is a cluster batch; resume watching it with 'sparkjobs runs attach {record.id}'.")
        who = f" (pid {record.owner.pid})" if record.owner else ""
        raise ConfigError(f"Run {record.id} is still being watched by sparkjobs{who}; nothing to recover.")
    workdir = service.home / "work" / record.id
    pending = pending_record(workdir)
    if record.status.is_terminal and pending is None:
        raise ConfigError(f"Run {record.id} already ended ({record.status.value}); nothing to recover.")
    outputs = workdir / SNAPSHOT_DIR / "outputs"
    local_outputs = outputs if outputs.is_dir() else None
    if pending is not None:  # it ended, but the store could not take its record then
        outcome = outcome_of_record(pending, local_outputs)
        record = replace(pending, status=RunStatus.RUNNING, ended_at=None)
    else:
        outcome = _outcome_after_loss(record, workdir, local_outputs)
    finisher = RunFinisher(repo, record, workdir, observer)
    return finisher.finish(outcome)


def _outcome_after_loss(record: RunRecord, workdir: Path, local_outputs: Path | None) -> Outcome:
    ended = read_exit_file(workdir / EXIT_FILE)
    owner = f"sparkjobs (pid {record.owner.pid})" if record.owner else "sparkjobs"
    if ended is None:
        return Outcome(RunStatus.FAILED, None, f"{owner} stopped before the job's end was known.", local_outputs)
    if ended.get("reason"):
        why = f"{owner} stopped, and the job was stopped with it."
        return Outcome(RunStatus.KILLED, None, why, local_outputs, ended_at=ended.get("ended_at"))
    outcome = outcome_from_exit(ended["exit_code"], False, local_outputs)
    why = f"{outcome.error or 'The job completed.'} {owner} stopped before recording it."
    return replace(outcome, error=why, ended_at=ended.get("ended_at"))
