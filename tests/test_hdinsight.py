"""End to end on HDInsight in a box (tests/plugins/hdinsight.py), through the real CLI: one
portable script runs unchanged on ``-c local`` (local Spark) and ``-c hdi`` (the HTTPS gateway,
real Apache Livy, spark-submit in yarn-cluster mode on a real YARN, the real wasb driver reading
and writing Azurite over HTTPS under the real account names, the cluster's key encrypted in
core-site).

Batches are slow here (40-90 s each), so the module runs few of them and checks much in each:
the first ``hdi`` run and a failing run go side by side, then a second ``hdi`` run of the
unchanged project. A wrong key is refused before anything reaches Livy.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import cli, cli_json, write
from plugins.azurite import DEV_ACCOUNT
from plugins.azurite_tls import SECOND_ACCOUNT
from plugins.hdinsight import HDInsight

pytestmark = [pytest.mark.spark, pytest.mark.azurite, pytest.mark.timeout(1200)]

# The portable script: nothing in it knows where it runs. Its one optional argument is a folder
# in another storage account, attached by sparkjobs from the credentials file (attachStorage).
JOB = """
import os, sys
from pyspark.sql import SparkSession
from pyspark.sql.utils import AnalysisException
from sparkjobs import context

spark = SparkSession.builder.getOrCreate()
run = os.environ["SPARKJOBS_RUN_ID"]
share = os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"]  # as Workbench scripts use it
print("SHARED", context.shared_path(), share, flush=True)

# The shared folder, through Hadoop: what earlier runs left there, then this run's mark.
try:
    seen = sorted(row.value for row in spark.read.text(context.shared_path("marks")).collect())
except AnalysisException:  # the first run: nothing there yet
    seen = []
print("SEEN", ",".join(seen) or "-", flush=True)
spark.createDataFrame([(run,)], "value string").write.mode("append").text(share + "marks")

# Outputs: a file from plain Python, and a table from Spark.
with open("outputs/summary.txt", "w") as summary:
    summary.write(f"run {run} saw {len(seen)} earlier runs\\n")
spark.range(5).selectExpr("id", "id * id AS square").write.parquet(context.outputs_path("squares"))


def where(rows):  # runs in an executor: YARN names its container in the environment
    rows = list(rows)
    yield os.environ.get("CONTAINER_ID", "no-container"), sum(row[0] for row in rows), len(rows)


if len(sys.argv) > 1:  # another account: executors read it, compute, write it, read it back
    other = sys.argv[1].rstrip("/")
    numbers = spark.read.csv(other + "/input/numbers.csv", header=True, inferSchema=True)
    numbers.selectExpr("n * 3 AS tripled").write.parquet(f"{other}/tripled/{run}")
    parts = spark.read.parquet(f"{other}/tripled/{run}").rdd.mapPartitions(where).collect()
    containers = sorted({part[0] for part in parts})
    print("OTHER sum", sum(p[1] for p in parts), "rows", sum(p[2] for p in parts), "in", ",".join(containers), flush=True)
print("JOB DONE", flush=True)
"""
FAILING = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.sql("SELECT missing_column_4b1d FROM range(3)").show()
"""
WRONG_KEY = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc="  # base64, nobody's key
NUMBERS = "n\n" + "".join(f"{n}\n" for n in range(1, 11))  # 1..10: tripled, they sum to 165
BATCH_WAIT = 900  # seconds; a bound, not an expectation


@dataclass(frozen=True)
class Box:
    h: HDInsight
    project: Path
    container: str
    other: str  # the folder in the second account
    env: dict[str, str]
    home: Path

    def blobs(self, prefix: str = "") -> list[str]:
        client = self.h.azurite.container_client(self.container)
        return sorted(b.name for b in client.list_blobs(name_starts_with=prefix or None))

    def code_blobs(self) -> list[str]:
        """What a submit stores besides its run's own files: snapshot objects, manifests, the bootstrap."""
        return [n for n in self.blobs() if n.startswith(("team/objects/", "team/snapshots/", "team/bootstrap/"))]

    def text(self, name: str) -> str:
        return self.h.azurite.container_client(self.container).download_blob(name).readall().decode()


@dataclass(frozen=True)
class Run:
    done: subprocess.CompletedProcess
    record: dict

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def output(self) -> str:
        return self.done.stdout + self.done.stderr


@pytest.fixture(scope="module")
def box(hdinsight: HDInsight, tmp_path_factory: pytest.TempPathFactory) -> Box:
    folder = tmp_path_factory.mktemp("e2e")
    container = f"e2e-{uuid.uuid4().hex[:12]}"
    project = hdinsight.write_project(folder / "project", container, hdi_extra=f"attachStorage: [{SECOND_ACCOUNT}]\n")
    write(project / "job.py", JOB)
    write(project / "failing.py", FAILING)
    # The second account's container exists, as a user's data does; its input is put there by the SDK.
    data = hdinsight.azurite.container_client("data", SECOND_ACCOUNT)
    if not data.exists():
        data.create_container()
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    data.upload_blob(f"{prefix}/input/numbers.csv", NUMBERS.encode())
    credentials = hdinsight.write_credentials(folder / "user" / "credentials.yaml")
    home = folder / "sparkjobs-home"  # the module's runs share one run store, whichever test looks
    env = hdinsight.cli_env(credentials, SPARKJOBS_HOME=str(home), SPARKJOBS_LIVY_POLL_SECONDS="2")
    return Box(hdinsight, project, container, hdinsight.storage("data", prefix, SECOND_ACCOUNT), env, home)


def _run(box: Box, *args: str) -> Run:
    done, record = cli_json("run", "--json", "--project", str(box.project), *args, env=box.env, timeout=BATCH_WAIT)
    return Run(done, record)


@pytest.fixture(scope="module")
def hdi_runs(box: Box) -> dict[str, Run | list[str]]:
    """The first run (with the second account) and a failing run side by side, then a second
    run of the unchanged project; the store's snapshot and bootstrap blobs before the second."""
    failing = subprocess.Popen(
        [sys.executable, "-m", "sparkjobs.cli", "run", "--json", "--project", str(box.project), "-c", "hdi", "failing.py"],
        env=box.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        first = _run(box, "-c", "hdi", "job.py", box.other)
        out, err = failing.communicate(timeout=BATCH_WAIT)
    finally:
        if failing.poll() is None:
            failing.kill()
    failed = Run(subprocess.CompletedProcess(failing.args, failing.returncode, out, err), _json(out, err))
    code_before = box.code_blobs()
    second = _run(box, "-c", "hdi", "job.py")
    return {"first": first, "failing": failed, "second": second, "before_second": code_before}


def _json(out: str, err: str) -> dict:
    try:
        return json.loads(out)
    except ValueError as exc:
        raise AssertionError(f"not JSON:\n{out}\n{err}") from exc


def _ok(run: Run) -> None:
    assert run.done.returncode == 0 and run.record["status"] == "completed", run.output[-6000:]


# ---- the snapshot ------------------------------------------------------------------------------
def test_snapshot_is_uploaded_content_addressed_and_read_by_the_bootstrap_through_wasb(box, hdi_runs):
    first, second = hdi_runs["first"], hdi_runs["second"]
    _ok(first)
    _ok(second)
    assert first.record["snapshot"] == second.record["snapshot"]
    # The second run of the unchanged project uploaded nothing but its own run's files.
    assert box.code_blobs() == hdi_runs["before_second"]
    digest = hashlib.sha256(JOB.lstrip().encode()).hexdigest()
    assert f"team/objects/{digest[:2]}/{digest}" in hdi_runs["before_second"], hdi_runs["before_second"]
    # The first two submits went side by side: one of them (or both) stored the snapshot.
    assert any("new file" in run.done.stderr for run in (first, hdi_runs["failing"]))
    assert "new file" not in second.done.stderr  # the unchanged snapshot was recognised, nothing stored
    storage = box.h.storage(box.container)
    # Livy got wasbs:// URIs for file and pyFiles, and spark-submit read them through the wasb driver.
    livy_log = box.h.cluster.livy_log_text()
    for run in (first, second):
        created = [line for line in livy_log.splitlines()
                   if "Creating batch session" in line and f"name: sparkjobs-{run.id}," in line]
        assert len(created) == 1, livy_log[-3000:]
        assert f"file: {storage}/bootstrap/" in created[0] and f"pyFiles: {storage}/bootstrap/" in created[0]
        assert f"args: {storage}/runs/{run.id}/launch.json" in created[0]
    assert f"INFO Client: Uploading resource {storage}/bootstrap/" in livy_log
    # The bootstrap copied the snapshot from its objects through Hadoop, not from a zip, while
    # the SparkContext started (in yarn-cluster mode both take seconds).
    assert re.search(rf"copied \d+ snapshot files \([^)]*\) from {re.escape(storage)}/objects/ while the SparkContext "
                     "started", first.output), first.output[-4000:]


# ---- outputs, the shared folder, the log and the exit code, through Hadoop --------------------
def test_outputs_shared_folder_log_and_exit_code_are_written_through_hadoop(box, hdi_runs):
    first, second = hdi_runs["first"], hdi_runs["second"]
    _ok(first)
    _ok(second)
    storage = box.h.storage(box.container)
    shared = f"{storage}/shared/ws/demo/"
    assert f"SHARED {shared} {shared}" in first.output  # context.shared_path() and the Workbench variable agree
    assert "SEEN -" in first.output
    assert f"SEEN {first.id}" in second.output  # the second run read what the first left
    marks = box.blobs("team/shared/ws/demo/marks/")
    assert any(name.endswith(".txt") for name in marks), marks
    for run in (first, second):
        stored = box.blobs(f"team/runs/{run.id}/")
        base = f"team/runs/{run.id}/"
        assert {base + "driver.log", base + "exit.json", base + "outputs/summary.txt",
                base + "outputs/squares/_SUCCESS"} <= set(stored), stored
        assert any(n.startswith(base + "outputs/squares/part-") and n.endswith(".parquet") for n in stored), stored
        assert base + "_credentials.json" not in stored  # read, then deleted by the bootstrap
        assert "JOB DONE" in box.text(base + "driver.log")
        assert json.loads(box.text(base + "exit.json"))["exit_code"] == 0
        assert run.record["exit_code"] == 0
        paths = {a["path"] for a in run.record["artifacts"]}
        assert "outputs/summary.txt" in paths and "outputs/squares/_SUCCESS" in paths, paths
    assert box.text(f"team/runs/{second.id}/outputs/summary.txt") == f"run {second.id} saw 1 earlier runs\n"
    # The record names the real batch and YARN application.
    assert first.record["details"]["app_id"].startswith("application_"), first.record["details"]


def test_artifacts_download_fetches_the_table_spark_wrote(box, hdi_runs, tmp_path):
    first = hdi_runs["first"]
    _ok(first)
    done = cli("artifacts", "download", first.id, "outputs/squares", "-o", str(tmp_path / "here"),
               "--project", str(box.project), env=box.env)
    assert done.returncode == 0, done.stderr
    expected = {a["path"]: a for a in first.record["artifacts"] if a["path"].startswith("outputs/squares/")}
    got = {f"outputs/{p.relative_to(tmp_path / 'here').as_posix()}": p
           for p in (tmp_path / "here").rglob("*") if p.is_file()}
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    for path, file in got.items():
        assert hashlib.sha256(file.read_bytes()).hexdigest() == expected[path]["sha256"], path


# ---- a second account, attached from the credentials file, used by executors ----------------------
def test_a_second_account_is_attached_from_the_credentials_and_executors_use_it(box, hdi_runs):
    first = hdi_runs["first"]
    _ok(first)
    line = next((l for l in first.output.splitlines() if l.startswith("OTHER ")), None)
    assert line is not None, first.output[-6000:]
    words = line.split()
    assert words[1:5] == ["sum", "165", "rows", "10"], line
    containers = words[6].split(",")
    # Each partition ran in a YARN container that is not the driver's (the application master's is _000001).
    assert all(c.startswith("container_") and not c.endswith("_000001") for c in containers), line
    data = box.h.azurite.container_client("data", SECOND_ACCOUNT)
    prefix = box.other.split("/", 3)[3]
    written = [b.name for b in data.list_blobs(name_starts_with=f"{prefix}/tripled/{first.id}/")]
    assert any(name.endswith(".parquet") for name in written), written
    assert f"fs.azure.account.key.{SECOND_ACCOUNT}.blob.core.windows.net" in first.output  # named, never shown
    for secret in box.h.secrets():
        assert secret not in first.output


# ---- failures ----------------------------------------------------------------------------------
def test_a_failing_script_exits_1_with_its_error_and_the_run_failed(box, hdi_runs):
    failed = hdi_runs["failing"]
    assert failed.done.returncode == 1, failed.output[-6000:]
    assert failed.record["status"] == "failed"
    assert "missing_column_4b1d" in failed.done.stderr
    assert "missing_column_4b1d" in box.text(f"team/runs/{failed.id}/driver.log")
    assert failed.record["exit_code"] == 1, failed.record


def test_a_wrong_key_leaves_a_failed_record_with_the_reason(box, tmp_path):
    credentials = box.h.write_credentials(tmp_path / "user" / "credentials.yaml", keys={DEV_ACCOUNT: WRONG_KEY})
    env = {**box.env, "SPARKJOBS_CREDENTIALS": str(credentials), "SPARKJOBS_HOME": str(tmp_path / "home")}
    project = box.h.write_project(tmp_path / "project", box.container, "wrong")
    write(project / "job.py", JOB)
    posts = box.h.gateway.count("POST")
    done = cli("run", "--project", str(project), "-c", "hdi", "job.py", env=env)
    assert done.returncode == 2, done.stderr
    assert "Error: Azure Blob storage refused to " in done.stderr and "check the connection_string from" in done.stderr
    assert "Traceback" not in done.stderr and WRONG_KEY not in done.stdout + done.stderr
    assert box.h.gateway.count("POST") == posts  # nothing reached Livy
    _, runs = cli_json("runs", "list", "--json", "--project", str(project), env=env)
    assert [(r["status"], "Azure Blob storage refused to " in r["error"]) for r in runs] == [("failed", True)], runs


# ---- the same script, unchanged, on local Spark -------------------------------------------------
def test_the_same_script_runs_unchanged_on_local_spark(box):
    first = _run(box, "-c", "local", "job.py")
    second = _run(box, "-c", "local", "job.py")
    for run in (first, second):
        _ok(run)
        assert "JOB DONE" in run.output
        paths = {a["path"] for a in run.record["artifacts"]}
        assert "outputs/summary.txt" in paths and "outputs/squares/_SUCCESS" in paths, paths
    assert "SEEN -" in first.output and f"SEEN {first.id}" in second.output
    shared = box.project.parent / f"{box.project.name}-share" / "ws" / "demo"
    assert f"SHARED {shared}/ {shared}/" in first.output
