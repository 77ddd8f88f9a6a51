"""The cluster target: a Livy batch (HDInsight, or any Spark behind Apache Livy).

What ``submit`` puts in the compute's ``storage`` before it POSTs the batch (nothing is sent
twice: the snapshot is content-addressed and the bootstrap is named by its digest)::

    objects/<ab>/<sha256>, snapshots/<digest>/...   the snapshot (snapshot_store.py)
    bootstrap/<sha16>/driver.py                     Livy's ``file``: the bootstrap program
    bootstrap/<sha16>/sparkjobs-runtime.zip         ``pyFiles``: what ``from sparkjobs import context`` needs
    environments/<digest>/archive.tar.gz            ``archives``: the run's Python dependencies, if
                                                    it declares any (shipping.py), once per digest,
                                                    its manifest and COMPLETE marker beside it
                                                    (environments/store.py)
    runs/<id>/launch.json                           the launch spec, the batch's only argument
    runs/<id>/_credentials.json                     Hadoop keys for the driver; deleted by the
                                                    bootstrap once read and by the target when
                                                    the run ends

The bootstrap reads the snapshot from its manifest and objects (not a zip in ``pyFiles``,
which would upload the whole project again for a one-file change), and writes
``runs/<id>/driver.log``, ``runs/<id>/outputs/``, what the script logged (``runs/<id>/metrics.jsonl``
and ``runs/<id>/params.jsonl``) and, last, ``runs/<id>/exit.json``.

The batch conf is the merged Spark conf (never a secret: ``run_flow`` refuses them) plus
``spark.jars.packages`` for the dependencies file's packages (Livy has no packages field) and
``spark.yarn.maxAppAttempts=1`` (a retried attempt would find the credentials deleted). Its
name is ``sparkjobs-<run id>``, which makes the POST safe to settle after a lost answer and
lets ``runs attach`` recognise the batch after a Livy restart reused its id.

Without ``storage`` in the compute, the cluster's own default storage is used, under
``sparkjobs/`` (``ambari.py``): the one storage a cluster can always read.
"""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from livy import Batch, BatchRequest, BatchState, Cadence, LivyClient

from ..config import RunSettings
from ..environments import ARCHIVE_ALIAS, BuiltEnvironment
from ..credentials import (
    StorageCredentials,
    credentials_file_path,
    driver_credentials,
    hadoop_conf_for,
    livy_password,
    resolve_storage_credentials,
)
from ..errors import ConfigError, JobLost, TargetError
from ..packages import PackageResolution
from ..runs import RunRecord
from ..snapshot import Snapshot, cache_path_for
from ..snapshot_store import SnapshotStore
from ..storage.base import Store
from ..storage.registry import open_store
from ..storage.uris import StorageLocation, parse_location
from .ambari import ClusterStorage, default_storage
from .base import Execution, JobLocations, SubmitPlan, Target
from .cluster_access import StorageAccess
from .livy_execution import LivyExecution, RunFiles, find_batch, livy_errors
from .shipping import EXECUTOR_PATH, launch_environment, with_python_path

__all__ = ["DEFAULT_CADENCE", "POLL_ENV", "LivyTarget"]

#: Livy itself refreshes a batch's state from YARN every 5 s, so a steady poll faster than
#: that learns nothing; right after the submission, a state change or a log line saying the
#: job is finishing, a change is likely, and a fast poll sees the end within a second.
DEFAULT_CADENCE = Cadence(fast=0.5, slow=5.0, burst=10.0)
POLL_ENV = "SPARKJOBS_LIVY_POLL_SECONDS"  # the steady interval; tests shorten it
RUNTIME_NAME = "sparkjobs-runtime.zip"
#: The driver runs in YARN's application master, so both it and the executors need the
#: environment's folder on PYTHONPATH; Spark's YARN client adds its own entries after these.
_PYTHON_PATH_KEYS = ("spark.yarn.appMasterEnv.PYTHONPATH", "spark.executorEnv.PYTHONPATH")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Bootstrap:
    """The bootstrap program and runtime zip, and where they live in storage."""

    driver: Path
    runtime: Path
    tag: str  # the first 16 hex digits of the pair's sha256

    @property
    def driver_key(self) -> str:
        return f"bootstrap/{self.tag}/driver.py"

    @property
    def runtime_key(self) -> str:
        return f"bootstrap/{self.tag}/{RUNTIME_NAME}"

    @classmethod
    def build(cls, folder: Path) -> _Bootstrap:
        from ..bootstrap import BOOTSTRAP_PATH, build_runtime_zip

        folder.mkdir(parents=True, exist_ok=True)
        runtime = build_runtime_zip(folder)
        tag = hashlib.sha256(BOOTSTRAP_PATH.read_bytes() + runtime.read_bytes()).hexdigest()[:16]
        return cls(BOOTSTRAP_PATH, runtime, tag)


class LivyTarget(Target):
    detachable = True

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        self._home = Path(self._environ.get("SPARKJOBS_HOME") or "~/.sparkjobs").expanduser().absolute()
        self._cadence = _cadence(self._environ)
        self._credentials: dict[str, StorageCredentials | None] = {}
        self._defaults: dict[str, ClusterStorage] = {}  # the cluster's own storage, by Livy URL

    # ---- where things are --------------------------------------------------------------
    def _storage(self, settings: RunSettings) -> str:
        """The compute's ``storage``, or else the cluster's own (asked of Ambari once per
        cluster, then cached), which the cluster can always read."""
        compute = settings.compute
        if compute.storage:
            return compute.storage
        livy = compute.livy or ""
        if livy not in self._defaults:
            answer, asked = default_storage(
                livy, auth=self._auth(settings), verify=compute.verify,
                cache_dir=self._home / "cache" / "cluster-storage", compute_file=_compute_file(settings),
            )
            if asked:
                log.warning("sparkjobs: storage not set; using the cluster's default storage %s", answer.storage)
            self._defaults[livy] = answer
        return self._defaults[livy].storage

    def _location(self, settings: RunSettings) -> StorageLocation:
        return parse_location(self._storage(settings))

    def _storage_credentials(self, settings: RunSettings) -> StorageCredentials | None:
        storage = self._storage(settings)
        if storage not in self._credentials:
            self._credentials[storage] = resolve_storage_credentials(self._location(settings), self._environ, settings.project.root)
        return self._credentials[storage]

    def _open_store(self, settings: RunSettings) -> Store:
        return open_store(self._location(settings), self._storage_credentials(settings))

    def locations(self, settings: RunSettings, workdir: Path, run_id: str) -> JobLocations:
        where = self._location(settings)
        return JobLocations(
            outputs=where.outputs_uri(run_id),
            shared=where.shared_uri(settings.project.workspace, settings.project.name),
        )

    def hadoop_secrets(self, settings: RunSettings) -> dict[str, str]:
        return hadoop_conf_for(self._location(settings), self._storage_credentials(settings))

    def job_storage(self, settings: RunSettings) -> tuple[StorageLocation, Store]:
        return self._location(settings), self._open_store(settings)

    def upload_environment(self, settings: RunSettings, environment: BuiltEnvironment) -> int:
        """Put an environment in the cluster's storage ahead of a run (``env build``); the bytes sent."""
        return _save_environment(self._open_store(settings), environment)

    # ---- what is sent ------------------------------------------------------------------
    def _launch_spec(self, plan: SubmitPlan, files: RunFiles) -> dict:
        where = self._location(plan.settings)
        return {
            "version": 1,
            "run_id": plan.run_id,
            "script": plan.script,
            "args": list(plan.args),
            "snapshot_archive": None,
            "snapshot_manifest": where.uri(SnapshotStore.manifest_key(plan.snapshot.digest), folder=False),
            "objects_uri": where.uri("objects"),
            "env": dict(plan.env),
            "outputs_uri": where.outputs_uri(plan.run_id),
            "log_uri": where.uri(files.driver_log, folder=False),
            "credentials_uri": where.uri(files.credentials, folder=False) if plan.hadoop_secrets else None,
            "exit_uri": where.uri(files.exit, folder=False),
            "metrics_uri": where.uri(files.metrics, folder=False),
            "params_uri": where.uri(files.params, folder=False),
            # YARN unpacks the batch's archive as ./sparkjobs_env where the driver starts.
            "environment": launch_environment(plan.environment, ARCHIVE_ALIAS) if plan.environment else None,
        }

    def _request(self, plan: SubmitPlan, bootstrap: _Bootstrap, files: RunFiles) -> BatchRequest:
        where = self._location(plan.settings)
        compute, deps = plan.settings.compute, plan.settings.dependencies
        conf = dict(plan.spark_conf)
        for key, values in (("spark.jars.packages", deps.packages), ("spark.jars.repositories", deps.repositories)):
            if values:
                conf[key] = ",".join(v for v in (conf.get(key), *values) if v)
        conf["spark.yarn.maxAppAttempts"] = "1"
        archives: list[str] = []
        if plan.environment is not None:
            archives.append(f"{where.uri(_archive_key(plan.environment), folder=False)}#{ARCHIVE_ALIAS}")
            conf = with_python_path(conf, _PYTHON_PATH_KEYS, EXECUTOR_PATH)
        return BatchRequest(
            file=where.uri(bootstrap.driver_key, folder=False),
            py_files=[where.uri(bootstrap.runtime_key, folder=False)],
            archives=archives,
            args=[where.uri(files.launch_spec, folder=False)],
            name=batch_name(plan.run_id),
            conf=conf,
            driver_memory=compute.driver_memory,
            executor_memory=compute.executor_memory,
            num_executors=compute.num_executors,
            queue=compute.queue,
        )

    def _auth(self, settings: RunSettings) -> tuple[str, str] | None:
        """The cluster login for Livy (and Ambari), or None when the compute names no user."""
        compute = settings.compute
        if not compute.livy:
            raise ConfigError(f"{_compute_file(settings)}: key 'livy' is required for a cluster target.")
        if not compute.username:
            return None
        password = livy_password(compute.livy, self._environ, settings.project.root)
        if not password:
            raise ConfigError(
                f"No Livy password for {compute.username} at {compute.livy}: set SPARKJOBS_LIVY_PASSWORD, or add "
                f"'livy: {{{compute.livy}: {{password: ...}}}}' to the credentials file "
                f"{credentials_file_path(self._environ)} (mode 0600, never in the project)."
            )
        return (compute.username, password)

    def _client(self, settings: RunSettings) -> LivyClient:
        auth = self._auth(settings)
        compute = settings.compute
        return LivyClient(compute.livy or "", auth=auth, verify=compute.verify, requested_by="sparkjobs")

    # ---- submit ------------------------------------------------------------------------
    def submit(self, plan: SubmitPlan) -> Execution:
        store = self._open_store(plan.settings)
        files = RunFiles(store, plan.run_id)
        client = self._client(plan.settings)
        bootstrap = _Bootstrap.build(plan.workdir)
        staged: set[str] = set()
        try:
            self._stage(plan, store, files, bootstrap, staged)
            request = self._request(plan, bootstrap, files)
            with livy_errors("submit the Livy batch"):
                batch = client.create_batch(request)
        except BaseException:
            # No batch will read the credentials, so they must not stay at rest. The error that
            # got here is the one to report; failing to delete matters only if they were written.
            problem = files.forget_credentials()
            if problem and files.credentials in staged:
                log.warning("Warning: %s Delete it by hand.", problem)
            client.close()
            raise
        return self._execution(client, batch, files, plan.settings, request.name or "")

    def _stage(self, plan: SubmitPlan, store: Store, files: RunFiles, bootstrap: _Bootstrap, staged: set[str]) -> None:
        """Everything the batch reads, written in parallel: each is one storage round trip or
        two when nothing changed, so a cached submit costs about one round trip. ``staged``
        receives the credentials file's key once it is written."""
        spec = json.dumps(self._launch_spec(plan, files), indent=2).encode()
        jobs = [
            lambda: self._save_snapshot(store, plan.snapshot),
            lambda: _put_once(store, bootstrap.driver_key, bootstrap.driver),
            lambda: _put_once(store, bootstrap.runtime_key, bootstrap.runtime),
            lambda: store.put_bytes(files.launch_spec, spec),
        ]
        if plan.environment is not None:
            environment = plan.environment
            jobs.append(lambda: _save_environment(store, environment))
        if plan.hadoop_secrets:
            def put_credentials() -> None:
                store.put_json(files.credentials, driver_credentials(plan.hadoop_secrets))
                staged.add(files.credentials)

            jobs.append(put_credentials)
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()

    def _marker(self, store: Store, snapshot: Snapshot) -> Path:
        """The last snapshot saved to this store from this project: its objects need no checks."""
        return cache_path_for(self._home / "cache" / "last-snapshot", Path(f"{store.location}|{snapshot.root}"))

    def _known_snapshot(self, store: Store, snapshot: Snapshot) -> str | None:
        try:
            return json.loads(self._marker(store, snapshot).read_text())["digest"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_snapshot(self, store: Store, snapshot: Snapshot) -> None:
        known = self._known_snapshot(store, snapshot)
        SnapshotStore(store).save(snapshot, known_complete=known)
        if known != snapshot.digest:
            marker = self._marker(store, snapshot)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"digest": snapshot.digest}))

    def _execution(self, client: LivyClient, batch: Batch, files: RunFiles, settings: RunSettings, name: str, forgotten: str | None = None) -> LivyExecution:
        compute = settings.compute
        return LivyExecution(
            client, batch, files, livy_url=compute.livy or "", name=name, cadence=self._cadence,
            start_timeout=compute.start_timeout_minutes * 60,
            start_setting=f"startTimeoutMinutes in aml_config/{compute.name}.compute",
            forgotten=forgotten, access=self._access(settings),
            packages=PackageResolution.of(settings.dependencies.packages, settings.dependencies.file,
                                          "the cluster's Livy server"),
        )

    def _access(self, settings: RunSettings) -> StorageAccess:
        """What to advise when the cluster cannot read the run's storage (defect: the batch dies
        before the bootstrap runs, and Livy's log holds only a Java exception)."""
        where = self._location(settings)
        compute_file = _compute_file(settings)
        if where.is_local:
            reach = "check that the cluster can read that folder"
        else:
            reach = (f"check that the cluster has access to storage account '{where.account}' and container "
                     f"'{where.container}' (a key or SAS for the account in its core-site, or an identity allowed to read it)")
        if settings.compute.storage:
            advice = f"{reach}, or leave 'storage' unset in {compute_file} to use the cluster's default storage"
        else:
            known = self._defaults[settings.compute.livy or ""]
            advice = (f"{reach}. It is the cluster's default storage as its Ambari gave it on {known.asked_at}; if the "
                      f"cluster was recreated since, delete {known.cache_file} so that sparkjobs asks again, or set "
                      f"'storage' in {compute_file}")
        return StorageAccess.of(where, advice)

    # ---- attach ------------------------------------------------------------------------
    def reattach(self, record: RunRecord, settings: RunSettings) -> Execution:
        """The batch of a detached run, checked to be the same batch: Livy restarted without
        recovery counts ids from 0 again, so an old id may name another run's batch."""
        name = record.details.get("livy_batch_name") or batch_name(record.id)
        batch_id = record.details.get("livy_batch_id")
        if batch_id is None or not batch_id.isdigit():
            raise TargetError(f"Run {record.id} has no Livy batch recorded: its submission did not finish.")
        files = RunFiles(self._open_store(settings), record.id)
        client = self._client(settings)
        with livy_errors(f"find Livy batch {batch_id} ({name})"):
            batch, why = find_batch(client, int(batch_id), name, record.details.get("app_id"))
        if batch is not None:
            return self._execution(client, batch, files, settings, name)
        if files.exit_code() is not None:  # it ended and the bootstrap said how: finish from storage
            placeholder = Batch(id=int(batch_id), state=BatchState.UNKNOWN, state_raw="unknown", name=name)
            return self._execution(client, placeholder, files, settings, name, forgotten=f"Livy no longer knows batch {name}")
        client.close()
        lost = (
            f"Livy no longer knows the batch of run {record.id} ({name}): {why}. Livy forgets a finished batch "
            f"after livy.server.session.state-retain.sec, a batch a client deletes (killing it) at once, and every "
            f"batch when it restarts (stopping them unless recovery is on); the job left no exit code at "
            f"{files.shown(files.exit)}, so how it ended is unknown"
        )
        raise JobLost(f"{lost}. The run is recorded as failed: nothing can watch it any more.", f"{lost}.")

    # ---- dry run -----------------------------------------------------------------------
    def describe(self, plan: SubmitPlan) -> dict:
        """The exact Livy request and what would be uploaded where; nothing is written."""
        compute = plan.settings.compute
        where = self._location(plan.settings)
        store = self._open_store(plan.settings)
        files = RunFiles(store, plan.run_id)
        with tempfile.TemporaryDirectory(prefix="sparkjobs-describe-") as folder:
            bootstrap = _Bootstrap.build(Path(folder))
            request = self._request(plan, bootstrap, files)
            spec = self._launch_spec(plan, files)
            pieces = [
                ("bootstrap", bootstrap.driver_key, bootstrap.driver.stat().st_size, store.exists(bootstrap.driver_key)),
                ("runtime", bootstrap.runtime_key, bootstrap.runtime.stat().st_size, store.exists(bootstrap.runtime_key)),
            ]
        new_files, new_bytes = self._snapshot_to_upload(store, plan.snapshot)
        uploads = [
            {"what": "snapshot", "to": where.uri(f"snapshots/{plan.snapshot.digest}"), "files": len(plan.snapshot.entries),
             "bytes": plan.snapshot.total_size, "new_files": new_files, "new_bytes": new_bytes},
        ]
        uploads += [
            {"what": what, "to": where.uri(key, folder=False), "bytes": size, "already_stored": present}
            for what, key, size, present in pieces
        ]
        if plan.environment is not None:
            from ..environments.store import EnvironmentStore

            uploads.append({"what": "python environment", "to": where.uri(_archive_key(plan.environment), folder=False),
                            "bytes": plan.environment.archive.stat().st_size,
                            "already_stored": EnvironmentStore(store).is_complete(plan.environment.digest)})
        uploads.append({"what": "launch spec", "to": where.uri(files.launch_spec, folder=False), "bytes": len(json.dumps(spec, indent=2))})
        if plan.hadoop_secrets:
            uploads.append({"what": "credentials", "to": where.uri(files.credentials, folder=False),
                            "content": {"hadoop": {key: "***" for key in plan.hadoop_secrets}}})
        return {
            "livy": {"url": compute.livy, "username": compute.username, "password": "***" if compute.username else None},
            "storage": {"uri": where.uri("", folder=False), "from": self._storage_source(plan.settings)},
            "request": request.redacted(),
            "launch_spec": spec,
            "uploads": uploads,
        }

    def _storage_source(self, settings: RunSettings) -> str:
        if settings.compute.storage:
            return f"'storage' in {_compute_file(settings)}"
        answer = self._defaults[settings.compute.livy or ""]
        return f"the cluster's default storage (fs.defaultFS {answer.default_fs}, from Ambari at {answer.ambari}, kept in {answer.cache_file})"

    def _snapshot_to_upload(self, store: Store, snapshot: Snapshot) -> tuple[int, int]:
        """Files and bytes of the snapshot not yet in storage (what submit would upload)."""
        snapshots = SnapshotStore(store)
        if snapshots.is_complete(snapshot.digest):
            return 0, 0
        known = self._known_snapshot(store, snapshot)
        present = {e.sha256 for e in snapshots.load_manifest(known)} if known and snapshots.is_complete(known) else set()
        wanted = {e.sha256: e.size for e in snapshot.entries if e.sha256 not in present}
        with ThreadPoolExecutor(max_workers=store.max_workers) as pool:
            stored = list(pool.map(lambda sha: store.exists(SnapshotStore.object_key(sha)), wanted))
        missing = [size for (sha, size), there in zip(wanted.items(), stored) if not there]
        return len(missing), sum(missing)


def _compute_file(settings: RunSettings) -> str:
    return f"aml_config/{settings.compute.name}.compute"


def batch_name(run_id: str) -> str:
    return f"sparkjobs-{run_id}"


def _archive_key(environment: BuiltEnvironment) -> str:
    from ..environments.store import EnvironmentStore  # lazy: most runs declare no dependencies

    return EnvironmentStore.archive_key(environment.digest)


def _save_environment(store: Store, environment: BuiltEnvironment) -> int:
    """Upload the environment unless its COMPLETE marker is there: one round trip when it is.
    The marker goes last, so an upload cut short is redone whole, never used half-written."""
    from ..environments.store import EnvironmentStore

    return EnvironmentStore(store).save(environment).uploaded_bytes


def _put_once(store: Store, key: str, path: Path) -> None:
    """Upload a content-addressed file unless it is already there."""
    if not store.exists(key):
        store.put_file(key, path, if_absent=True)


def _cadence(environ: Mapping[str, str]) -> Cadence:
    raw = environ.get(POLL_ENV)
    if not raw:
        return DEFAULT_CADENCE
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 600:
        raise ConfigError(f"{POLL_ENV} must be a number of seconds between 0 and 600, not {raw!r}.")
    return Cadence(fast=min(DEFAULT_CADENCE.fast, value), slow=value, burst=DEFAULT_CADENCE.burst)
