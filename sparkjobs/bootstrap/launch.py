"""The bootstrap's steps, in order, from the launch spec to the exit code.

``spark-submit [--py-files snapshot-<digest>.zip,sparkjobs-runtime-<digest>.zip] driver.py SPEC``

SPEC is a local path, a ``file://`` URI or any Hadoop filesystem URI (``wasbs://``, ``abfss://``,
``hdfs://``) of a JSON launch spec; unknown keys are refused, so a misspelt key cannot silently
lose a run's outputs::

    {"version": 1,
     "run_id": "20261124T073312123Z-3f9c2a",
     "script": "src/train.py",            relative POSIX path inside the snapshot
     "args": ["--alpha", "0.5"],
     "snapshot_archive": "snapshot-<digest>.zip" | null,   a zip shipped in --py-files
     "snapshot_manifest": "wasbs://.../snapshots/<digest>/manifest.json" | null,
     "objects_uri": "wasbs://.../objects/" | null,         required with snapshot_manifest
     "env": {"SPARKJOBS_RUN_ID": "...", ...},              strings only
     "outputs_uri": "wasbs://.../runs/ID/outputs/" | null, required with a snapshot to unpack
     "log_uri": "wasbs://.../runs/ID/driver.log" | null,
     "credentials_uri": "wasbs://.../runs/ID/_credentials.json" | null,
     "exit_uri": "wasbs://.../runs/ID/exit.json" | null,
     "metrics_uri": "wasbs://.../runs/ID/metrics.jsonl" | "/local/path" | null,
     "params_uri": "wasbs://.../runs/ID/params.jsonl" | "/local/path" | null,
     "environment": {"path": "sparkjobs_env" | "/local/unpacked", "python": "3.11", "digest": "..."} | null,
     "error_path": "/local/work/bootstrap-error.txt" | null,
     "work_dir": "/local/work" | null}

``environment`` is the run's Python dependencies (``environment.py``): checked against this
interpreter first of all, then put on ``sys.path``. A mismatch, or a missing folder, is a
bootstrap error (exit 2), and its message is also written to the exit file as ``error``, and to
``error_path`` (plain file operations: the local and spark targets, whose driver runs here), so the
run record says it rather than only "exited with code 2".

The snapshot comes one of three ways: neither key (the cwd already is the snapshot: the local
target), ``snapshot_archive`` (a zip in pyFiles), or ``snapshot_manifest`` (a content-addressed
snapshot in storage, as cluster targets save it: ``objects/<ab>/<sha256>`` holds each file's
bytes once, so a one-file change uploads one file rather than the whole project again). With a
manifest, each file is copied from ``objects_uri`` to ``<temp>/snapshot/<path>`` by a small
thread pool, its size and SHA-256 checked and its executable bit restored; paths are refused if
absolute or holding ``..``. Then, so that executors can import the project's modules too, the
Python files (every ``.py`` file, and every file inside a package folder) are zipped locally
and given to ``SparkContext.addPyFile``; top-level data files stay on the driver.

What it does, in order: read the spec; tee the Python process's stdout and stderr (file
descriptors, so child processes are caught) into a log sent to ``log_uri`` every
``LOG_INTERVAL_SECONDS`` and at the end; point ``SPARKJOBS_METRICS`` and ``SPARKJOBS_PARAMS`` at
the files ``context.log_metric`` and ``log_param`` append to (a plain path as it is; for a URI a
local file copied there as often as the log, and last before the exit file: ``logged.py``); move the Hadoop settings of the credentials file
(``{"hadoop": {"fs.azure.account.key.ACCOUNT.blob.core.windows.net": "..."}, "mask": [...]}``) onto
the SparkContext's Hadoop configuration at run time, never Spark conf, and delete the file; every
string under ``mask`` (each form of each secret, computed by the submitter) is replaced by ``***``
in the driver log; unpack
or copy the snapshot into a temp folder and work there; set ``env``; run the script with
``runpy.run_path(..., run_name="__main__")`` (``__file__`` and ``sys.argv[0]`` are its absolute
path; the script's folder, then the snapshot root, lead ``sys.path``); copy ``./outputs`` to
``outputs_uri`` (also when the script failed; a failing script's traceback is printed from its own
first frame, and an error raised in a Spark task as the task's Python traceback, once: see
``tracebacks.py``); upload the log a last time; write
``{"exit_code": N, "run_id": ..., "outputs_sha256": {"model.pkl": "<hex>", ...}}`` to ``exit_uri`` (last, so its presence means the log and
outputs are in storage: Livy only says success or dead, and forgets a batch after a while);
exit with the script's exit code. The temp folder is made in ``work_dir`` when given (the local and
spark targets' run folder, which sparkjobs removes however the job ended), in a YARN container's
own folder, or else in the machine's temp folder.

Locations: the spec and the credentials file, when given as a plain path or ``file:`` URI, are
read with open() (and the credentials removed with os.remove), so a local run needs no JVM; other
URIs, and the log, snapshot objects, outputs and exit file, go through Hadoop, except that a
process not started by spark-submit (no JVM to ask, e.g. a test runner) uses plain file
operations for local locations. The bootstrap creates the SparkContext itself only when the spec
is remote (a cluster run: yarn-cluster mode fails an application that never creates one),
credentials must be applied, or snapshot modules must be shipped with ``addPyFile``; the script's
``getOrCreate()`` then shares it. Its own storage I/O uses a separate Hadoop configuration, so it
still works after the script has called ``spark.stop()``.

Known limits: a script that builds ``SparkContext(...)`` directly (not ``getOrCreate``) fails when
the bootstrap created the context; a context the script re-creates after stopping its own lacks the
credentials and the shipped modules; a YARN retry finds the credentials already deleted (submit
with ``spark.yarn.maxAppAttempts=1``); a kill (SIGTERM) ends the process before outputs are copied
and before the exit file is written.

Why it exists: spark-submit and Livy can only run a file. Everything Azure ML Workbench did
around a run (a private copy of the project, environment, outputs kept per run, the driver's
output kept even on YARN) has to happen inside the driver process, on a machine where sparkjobs
is not installed. So the bootstrap imports only the standard library and pyspark (lazily), travels
in the runtime zip (``pyFiles``) beside ``context.py``, and its storage access goes through the
Hadoop FileSystem API of the JVM Spark already runs.

Exit codes: the script's own (0 success, ``sys.exit(n)`` gives n, an uncaught exception 1);
2 when the bootstrap could not start the script (bad spec, missing snapshot or credentials);
1 when the script succeeded but some outputs could not be saved.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

from .access import cluster_access, credential_host
from .console import brief, count, say
from .drivelog import driver_log
from .environment import activate
from .hadoop import Spark, read_json
from .logged import logged_files
from .outputs import ship_outputs
from .script import run_script
from .snapshot import copy_snapshot_early, prepare_snapshot
from .spec import EXIT_BOOTSTRAP, BootstrapError, LaunchSpec, local_path

__all__ = ["main"]


def _load_spec(location: str, spark: Spark) -> LaunchSpec:
    if local_path(location) is None:
        # The spec is on cluster storage, so this is a cluster run: yarn-cluster mode fails an
        # application whose main file never creates a SparkContext, so make it now (in the
        # background: the spec is read and the snapshot copied meanwhile).
        spark.start_context()
    return LaunchSpec.from_json(read_json(location, spark, "launch spec"))


def _apply_credentials(uri: str, spark: Spark, mask: list[bytes]) -> None:
    """Move the credentials file's Hadoop settings into the run, then delete the file; ``mask``
    receives the strings the driver log must never hold."""
    try:
        data = read_json(uri, spark, "credentials file")
    except BootstrapError as exc:
        raise BootstrapError(
            f"{exc} It is deleted once read, so a retried attempt finds it gone: submit with "
            "spark.yarn.maxAppAttempts=1."
        ) from None
    finally:
        _delete_credentials(uri, spark)
    forms = data.get("mask", []) if isinstance(data, dict) else None
    if not isinstance(forms, list) or not all(isinstance(form, str) and form for form in forms):
        raise BootstrapError(f"The credentials file at {uri} must hold its 'mask' as a list of strings.")
    mask.extend(sorted((form.encode() for form in forms), key=len, reverse=True))
    if not Spark.in_spark_submit():
        say("no Spark in this process (not started by spark-submit); the credentials were not needed.")
        return
    settings = data.get("hadoop") if isinstance(data, dict) else None
    if not isinstance(settings, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in settings.items()
    ):
        raise BootstrapError(f'The credentials file at {uri} must hold {{"hadoop": {{"key": "value", ...}}}}.')
    if not settings:
        return  # only secrets to mask: no reason to make a SparkContext here
    configuration = spark.context()._jsc.hadoopConfiguration()
    for host, shown_by in sorted(cluster_access(settings, configuration).items()):
        say(
            f"the cluster already has access to storage account {host.split('.')[0]} ({shown_by} is set), "
            f"so sparkjobs leaves it as it is and does not set its own credentials for {host}"
        )
        settings = {key: value for key, value in settings.items() if credential_host(key) != host}
    if not settings:
        return
    spark.add_hadoop_settings(settings)
    say(f"set {count(len(settings), 'Hadoop credential setting')}: {', '.join(sorted(settings))}")


def _delete_credentials(uri: str, spark: Spark) -> None:
    local = local_path(uri)
    try:
        if local is not None:
            os.remove(local)
        else:
            spark.delete(uri)
    except FileNotFoundError:
        pass  # nothing at rest: what deleting is for
    except Exception as exc:  # OSError or Py4JJavaError; the run can go on, but the user must know
        say(f"could not delete the credentials file {uri}: {brief(exc)}; delete it by hand.")


def _launch(spec: LaunchSpec, spark: Spark, work: str, digests: dict[str, str], mask: list[bytes],
            failure: list[str]) -> int:
    """Steps 1 to 6: Python dependencies, credentials, snapshot, environment, script, outputs.
    ``failure`` receives the bootstrap's own error, if it stops the run."""
    try:
        if spec.environment is not None:
            say(f"Python dependencies {spec.environment.digest[:12]} from {activate(spec.environment)}")
        early = copy_snapshot_early(spec, spark, work)
        if spec.credentials_uri:
            _apply_credentials(spec.credentials_uri, spark, mask)
        root = prepare_snapshot(spec, spark, work, early)
    except BootstrapError as exc:
        say(str(exc))
        failure.append(str(exc))
        return EXIT_BOOTSTRAP
    os.environ.update(spec.env)
    outputs = os.path.abspath("outputs")  # absolute: the script may chdir
    os.makedirs(outputs, exist_ok=True)
    if spec.log_uri:
        # The stored driver log is read apart from what the submitter printed: say where the
        # script's output starts. A local run's console already said which run this is.
        say(f"run {spec.run_id}: running {spec.script}")
    code = run_script(spec.script, spec.args, root)
    if spec.outputs_uri and not ship_outputs(spark, outputs, spec.outputs_uri, digests) and code == 0:
        code = 1  # a run whose outputs were not all saved is not a success
    return code


def _write_exit(spec: LaunchSpec, code: int, digests: dict[str, str], spark: Spark, work: str,
                failure: list[str]) -> None:
    """Record the exit code in storage, after the log and outputs: a submitter that finds this
    file knows how the run ended even when Livy has forgotten the batch."""
    local = os.path.join(work, "exit.json")
    record: dict = {"run_id": spec.run_id, "exit_code": code, "outputs_sha256": digests}
    if failure:
        record["error"] = failure[0]  # why the bootstrap stopped the run, for the run record
    with open(local, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    try:
        spark.upload(local, spec.exit_uri)
    except Exception as exc:  # OSError or Py4JJavaError: the submitter then only has Livy's word
        say(f"could not save the exit code to {spec.exit_uri}: {brief(exc)}")


def _work_parent(spec: LaunchSpec) -> str | None:
    """Where the temp folder goes. A killed driver (a cancelled run, YARN killing the application)
    never reaches its clean-up, so the folder must sit where something else removes it: the run's
    work folder that sparkjobs removes, or the YARN container's own folder; else the temp folder."""
    if spec.work_dir:
        return spec.work_dir
    if os.environ.get("CONTAINER_ID"):  # set by YARN's NodeManager, which deletes the container's folder
        return os.getcwd()
    return None


def main(argv: list[str]) -> int:
    """Run one launch spec and return the exit code for the process."""
    if len(argv) != 1:
        say("usage: driver.py LAUNCH_SPEC (a path or URI of the launch spec JSON)")
        return EXIT_BOOTSTRAP
    spark = Spark()
    start_dir = os.getcwd()
    try:
        spec = _load_spec(argv[0], spark)
    except BootstrapError as exc:
        say(str(exc))
        spark.close()
        return EXIT_BOOTSTRAP
    work = tempfile.mkdtemp(prefix="sparkjobs-bootstrap-", dir=_work_parent(spec))
    try:
        digests: dict[str, str] = {}
        mask: list[bytes] = []
        failure: list[str] = []
        with driver_log(spec.log_uri, spark, work, mask), logged_files(spec, spark, work):
            code = _launch(spec, spark, work, digests, mask, failure)
        if spec.exit_uri:
            _write_exit(spec, code, digests, spark, work, failure)
        if spec.error_path and failure:
            try:
                with open(spec.error_path, "w", encoding="utf-8") as handle:
                    handle.write(failure[0])
            except OSError as exc:  # the message is in the output already; the record says less
                say(f"could not save the error to {spec.error_path}: {brief(exc)}")
        return code
    finally:
        os.chdir(start_dir)
        spark.close()
        shutil.rmtree(work, ignore_errors=True)
