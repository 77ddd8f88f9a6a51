"""The spark target: spark-submit to an existing Spark cluster (``master: spark://HOST:7077``).

For users who outgrow one machine without HDInsight. It is the local target pointed at a
cluster, so it reuses ``LocalTarget`` (fresh copy of the snapshot as the driver's working
folder, the bootstrap and its launch spec, the spark-submit process and its stopping).
What differs:

- Client deploy mode only: the driver runs on this machine, so its output streams here. Spark
  has no cluster deploy mode for Python applications on standalone masters, and on YARN or
  Kubernetes the driver would leave this machine and its snapshot copy; that is what the
  ``cluster`` (Livy) target is for.
- Executors run on other machines and need the project's modules: a zip of the materialised
  snapshot, built deterministically in the run's workdir, goes with ``--py-files``, along with
  the runtime zip that carries ``sparkjobs.context``.
- Executors do not use this machine's Python path (it means nothing on a worker): they run
  ``spark.pyspark.python``, else ``PYSPARK_PYTHON`` if the user set it, else Spark's default
  ``python3`` on each worker. The driver runs this interpreter.

Where outputs and the shared folder are:

- Without ``storage``: as on the local target, local paths. Files the script writes to
  ``./outputs`` on the driver become artifacts. The shared folder is
  ``nativeSharedDirectory/<workspace>/<project>/`` on this machine; it only makes sense for
  executor-side code (and Spark writers pointed at ``context.shared_path()`` or
  ``context.outputs_path()``) if every worker sees the same folder at the same path, e.g. an
  NFS mount.
- With ``storage`` (``wasbs://``, ``abfss://`` or ``file:///path`` every node can reach): the
  job sees URIs, ``<storage>/runs/<id>/outputs/`` and ``<storage>/shared/<workspace>/<project>/``;
  the bootstrap copies ``./outputs`` and the driver log there through Hadoop, and the run flow
  lists (or copies) the artifacts from that store. The storage account's Hadoop key is attached
  by the bootstrap at run time, never passed as conf. Azure schemes need the hadoop-azure jars
  on the driver and executors (e.g. ``packages:`` in the dependencies file).
"""
from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..config import CONFIG_DIR, Framework, RunSettings
from ..config_files import Problems
from ..credentials import (
    StorageCredentials,
    driver_credentials,
    hadoop_conf_for,
    resolve_storage_credentials,
)
from ..errors import ConfigError
from ..packages import PackageResolution
from ..snapshot import Snapshot
from ..storage.base import Store
from ..storage.registry import open_store
from ..storage.uris import StorageLocation, parse_location
from .base import Execution, JobLocations, Outcome, SubmitPlan
from .local import LocalTarget, package_resolution, spark_submit_argv, spark_submit_of
from .shipping import EXECUTOR_PATH, with_archive, with_python_path
from .submit_process import EXIT_FILE, ProcessExecution

__all__ = ["SparkClusterTarget", "snapshot_zip_path", "write_snapshot_zip"]

DEPLOY_MODE = "client"
RUNTIME_ZIP = "sparkjobs-runtime.zip"
# Fixed zip metadata: the archive's bytes depend only on the snapshot's paths, contents and
# executable bits, like its digest.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def snapshot_zip_path(plan: SubmitPlan) -> Path:
    return plan.workdir / f"snapshot-{plan.snapshot.digest[:16]}.zip"


def write_snapshot_zip(snapshot: Snapshot, folder: Path, dest: Path) -> Path:
    """Zip the snapshot's files as materialised in ``folder``, sorted, with fixed timestamps."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in sorted(snapshot.entries, key=lambda e: e.path):
            info = zipfile.ZipInfo(entry.path, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if entry.executable else 0o644) << 16
            archive.writestr(info, (folder / entry.path).read_bytes())
    return dest


def _shipping_environment(plan: SubmitPlan) -> SubmitPlan:
    """The plan with its Python dependencies in the conf for executors (shipping.py); the driver
    runs here and uses the unpacked copy, through the local target's PYTHONPATH."""
    if plan.environment is None:
        return plan
    conf = with_archive(plan.spark_conf, plan.environment.archive.resolve().as_uri())
    return replace(plan, spark_conf=with_python_path(conf, ("spark.executorEnv.PYTHONPATH",), EXECUTOR_PATH))


def _compute_file(settings: RunSettings) -> Path:
    return settings.project.root / CONFIG_DIR / f"{settings.compute.name}.compute"


def _check_supported(settings: RunSettings) -> None:
    """Refuse, before anything starts, what this target cannot run; every problem in one message."""
    compute = settings.compute
    where = _compute_file(settings)
    problems = Problems()
    mode = compute.deploy_mode.strip().lower()
    if mode == "cluster" and compute.master.startswith("spark://"):
        problems.add(
            where,
            "key 'deployMode' is 'cluster', but Spark does not support cluster deploy mode for Python "
            "applications on standalone clusters; use 'deployMode: client' (the driver runs on this machine, "
            "the executors on the cluster)",
        )
    elif mode == "cluster":
        problems.add(
            where,
            "key 'deployMode' is 'cluster', but a spark target runs the driver on this machine (client mode); "
            "use 'deployMode: client', or a 'cluster' (Livy) target to run the driver on the cluster",
        )
    elif mode != DEPLOY_MODE:
        problems.add(where, f"key 'deployMode' must be 'client' (got {compute.deploy_mode!r})")
    if settings.framework is Framework.PYTHON:
        problems.add(
            where.with_name(f"{settings.name}.runconfig"),
            "key 'Framework' is 'Python', which runs plain Python on this machine; use 'PySpark' with a "
            "spark target, or a local target",
        )
    for key, value in (("numExecutors", compute.num_executors), ("queue", compute.queue)):
        if value is not None:
            problems.add(where, f"key '{key}' is for cluster (Livy) targets; set Spark properties in 'conf' instead")
    problems.raise_if_any()


def _storage(settings: RunSettings) -> StorageLocation | None:
    text = settings.compute.storage
    if not text:
        return None
    try:
        return parse_location(text)
    except ConfigError as exc:
        raise ConfigError(f"Invalid configuration: {_compute_file(settings)}: key 'storage': {exc}") from None


class _SparkExecution(ProcessExecution):
    """A spark-submit process; with storage, the bootstrap has copied its outputs to ``store``."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], outputs: Path | None,
                 exit_file: Path, store: Store | None, details: dict[str, str],
                 packages: PackageResolution | None) -> None:
        super().__init__(argv, cwd=cwd, env=env, outputs=outputs, exit_file=exit_file, packages=packages)
        self._store = store
        self.details = {**self.details, **details}

    def wait(self) -> Outcome:
        return replace(super().wait(), outputs_store=self._store)


class SparkClusterTarget(LocalTarget):
    """spark-submit in client mode to ``compute.master``; see the module docstring."""

    def locations(self, settings: RunSettings, workdir: Path, run_id: str) -> JobLocations:
        _check_supported(settings)
        storage = _storage(settings)
        if storage is None:
            return super().locations(settings, workdir, run_id)
        project = settings.project
        return JobLocations(outputs=storage.outputs_uri(run_id), shared=storage.shared_uri(project.workspace, project.name))

    def hadoop_secrets(self, settings: RunSettings) -> dict[str, str]:
        storage = _storage(settings)
        if storage is None:
            return {}
        return hadoop_conf_for(storage, self._credentials(storage, settings))

    def _credentials(self, storage: StorageLocation, settings: RunSettings) -> StorageCredentials | None:
        return resolve_storage_credentials(storage, self._environ, settings.project.root)

    def _credentials_file(self, plan: SubmitPlan) -> dict | None:
        """With storage, the bootstrap writes the driver log there itself, so it also gets every
        form of the run's secrets to mask in it (the file is this user's only, and deleted once read)."""
        if _storage(plan.settings) is None:
            return super()._credentials_file(plan)
        if not (plan.hadoop_secrets or plan.masked):
            return None
        return driver_credentials(plan.hadoop_secrets, plan.masked)

    def _launch(self, plan: SubmitPlan) -> tuple[Path, Path]:
        """The local target's launch, plus the zips for --py-files and, with storage, where the
        bootstrap sends ./outputs and the driver log."""
        from ..bootstrap import build_runtime_zip

        snapshot_dir, launch = super()._launch(plan)
        write_snapshot_zip(plan.snapshot, snapshot_dir, snapshot_zip_path(plan))
        build_runtime_zip(plan.workdir / RUNTIME_ZIP)
        storage = _storage(plan.settings)
        if storage is not None:
            spec = json.loads(launch.read_text())
            spec["outputs_uri"] = storage.outputs_uri(plan.run_id)
            spec["log_uri"] = storage.uri(f"runs/{plan.run_id}/driver.log", folder=False)
            launch.write_text(json.dumps(spec, indent=2))
        return snapshot_dir, launch

    def process_env(self, plan: SubmitPlan) -> dict[str, str]:
        env = super().process_env(plan)
        keep = plan.settings.compute.python_location or "PYSPARK_PYTHON" in self._environ or "PYSPARK_PYTHON" in plan.env
        if not keep:
            del env["PYSPARK_PYTHON"]  # this machine's interpreter path means nothing on a worker
        return env

    def argv(self, plan: SubmitPlan, launch: Path) -> list[str]:
        from ..bootstrap import BOOTSTRAP_PATH

        compute = plan.settings.compute
        extra = ["--deploy-mode", DEPLOY_MODE, "--py-files", f"{snapshot_zip_path(plan)},{plan.workdir / RUNTIME_ZIP}"]
        if compute.driver_memory:
            extra += ["--driver-memory", compute.driver_memory]
        if compute.executor_memory:
            extra += ["--executor-memory", compute.executor_memory]
        submit = spark_submit_of(plan, self._environ)
        return spark_submit_argv(_shipping_environment(plan), submit, compute.master, BOOTSTRAP_PATH, str(launch),
                                 extra=extra)

    def submit(self, plan: SubmitPlan) -> Execution:
        _check_supported(plan.settings)
        store = self._outputs_store(plan.settings)
        snapshot_dir, launch = self._launch(plan)
        return _SparkExecution(
            self.argv(plan, launch),
            cwd=snapshot_dir,
            env=self.process_env(plan),
            outputs=None if store is not None else snapshot_dir / "outputs",
            exit_file=plan.workdir / EXIT_FILE,
            store=store,
            details={"master": plan.settings.compute.master},
            packages=package_resolution(plan.settings),
        )

    def _outputs_store(self, settings: RunSettings) -> Store | None:
        """The storage store, opened (and its container created: the wasb driver cannot) before
        the job starts: a missing Azure extra, missing or wrong credentials are bad input, not a
        failed run."""
        storage = _storage(settings)
        if storage is None:
            return None
        store = open_store(storage, self._credentials(storage, settings))
        store.prepare_writes()
        return store

    def describe(self, plan: SubmitPlan) -> dict:
        described = super().describe(plan)
        storage = _storage(plan.settings)
        if storage is not None:
            described["outputs_uri"] = storage.outputs_uri(plan.run_id)
        return described
