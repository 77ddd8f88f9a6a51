"""The cluster target end to end: the real CLI against the Livy-protocol test server (behind
the HTTPS gateway, tests/gateway/, where a test needs a login or a gateway's faults), with
``storage: file:///<tmp>/store`` (local Spark has no wasb driver; the bootstrap's Hadoop copy is
the same code for file:// and wasbs://).

Real Spark runs only in the ``spark_runs`` fixture: three runs of one project started together
(a success and a failure through Livy with real spark-submit, and the same success on
``-c local``), shared by the ``spark`` tests. Everything about polling, faults, kills,
attaching and secrets uses the server's ``python`` runner, which runs the bootstrap with plain
Python: the same launch spec, snapshot copy, driver log and exit file, without a JVM.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from gateway import Gateway
from helpers import REPO, cli, make_project, write
from livy_server import LivyTestServer

JOB = """
import json, os, sys
from pyspark.sql import SparkSession
from sparkjobs import context
from lib.helper import greet

spark = SparkSession.builder.getOrCreate()
mode = sys.argv[1]
os.makedirs("outputs", exist_ok=True)
with open("outputs/metrics.json", "w") as handle:
    json.dump({
        "greeting": greet(),
        # pickled by reference: an executor's Python must import lib.helper itself
        "executor_greeting": spark.sparkContext.parallelize([1], 1).map(lambda _: greet()).collect()[0],
        "data": open("data/input.txt").read().strip(),
        "cluster": context.is_cluster(),
        "shared": context.shared_path(),
    }, handle)
# one folder per mode: the runs are concurrent, and two overwrites of one folder would race
spark.range(3).write.mode("overwrite").json(context.shared_path(f"numbers-{mode}"))
print("PRINTED-BY-THE-SCRIPT", mode)
if mode == "fail":
    sys.exit(3)
spark.stop()
"""

# For the python runner: no Spark, just time, output and an exit code.
SLEEPER = """
import os, sys, time
print("STARTED", flush=True)
os.makedirs("outputs", exist_ok=True)
open("outputs/note.txt", "w").write("written by the sleeper")
time.sleep(float(sys.argv[1]))
print("FINISHED", flush=True)
sys.exit(int(sys.argv[2]))
"""


@dataclass
class Cluster:
    """One project with cluster computes pointing at test servers, a file:// store, a home."""

    base: Path
    env: dict[str, str]
    project: Path = field(init=False)
    store: Path = field(init=False)
    home: Path = field(init=False)

    def __post_init__(self) -> None:
        self.project = make_project(self.base / "proj", self.base / "share")
        self.store = self.base / "store"
        self.home = Path(self.env["SPARKJOBS_HOME"])
        write(self.project / "job.py", JOB)
        write(self.project / "sleeper.py", SLEEPER)
        write(self.project / "lib" / "__init__.py", "")
        write(self.project / "lib" / "helper.py", "def greet():\n    return 'hello from lib'\n")
        write(self.project / "data" / "input.txt", "forty-two\n")

    def behind(self, gateway: Gateway, extra: str = "") -> dict[str, str]:
        """Reach Livy through the HTTPS gateway, as on HDInsight; returns the env with the login."""
        assert gateway.auth is not None
        self.use(gateway, extra=f"username: {gateway.auth[0]}\nverify: {gateway.tls.ca}\n{extra}")
        return dict(self.env, SPARKJOBS_LIVY_PASSWORD=gateway.auth[1])

    def use(self, server: LivyTestServer | Gateway, name: str = "hdi", extra: str = "", storage: str | None = None) -> str:
        write(
            self.project / "aml_config" / f"{name}.compute",
            f"type: cluster\nlivy: {server.url}\nstorage: {storage or self.store.as_uri()}\n"
            f"conf:\n  spark.ui.enabled: 'false'\n  spark.sql.shuffle.partitions: '1'\n{extra}",
        )
        write(
            self.project / "aml_config" / f"{name}.runconfig",
            f"Target: {name}\nFramework: PySpark\nArgumentVector: ['$file']\n"
            "SparkDependenciesFile: aml_config/spark_dependencies.yml\n",
        )
        return name

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return cli(*self._with_project(args), env=env or self.env)

    def _with_project(self, args: tuple[str, ...]) -> list[str]:
        head = 2 if args[0] == "runs" else 1  # options go before a run's script and its arguments
        return [*args[:head], "--project", str(self.project), *args[head:]]

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict]:
        done = self.cli("run", "--json", *args, env=env)
        return done, _record(done)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "sparkjobs.cli", *self._with_project(args)],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )

    def run_while(self, server: LivyTestServer, action) -> tuple[subprocess.CompletedProcess, dict]:
        """Start a 60 s sleeper run, call ``action(process)`` once the job has printed, wait for the CLI."""
        process = self.popen("run", "-c", "hdi", "--json", "sleeper.py", "60", "0")
        try:
            _wait_for(lambda: _printed(server, 0, "STARTED"), what="the job to start")
            action(process)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        return done, _record(done)

    def stored_log(self, run_id: str) -> str:
        return (self.home / "runs" / run_id / "driver.log").read_text()


def _record(done: subprocess.CompletedProcess) -> dict:
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"no JSON record (exit {done.returncode}):\n{done.stdout}\n{done.stderr}") from None


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKJOBS_", "AZURE_STORAGE"))}
    env.update(SPARKJOBS_HOME=str(home), SPARKJOBS_LIVY_POLL_SECONDS="0.2", **extra)
    return env


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch) -> Cluster:
    # The server's jobs inherit this process's environment: a job killed by a test leaves its
    # bootstrap's temp folder behind (SIGTERM ends it at once), and it should land in tmp_path.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    return Cluster(tmp_path, _env(tmp_path / "home"))


@pytest.fixture
def fake_livy(livy_server_factory) -> LivyTestServer:
    """A Livy test server whose batches run the bootstrap with plain Python (no Spark)."""
    return livy_server_factory(runner="python")


def _wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _printed(server: LivyTestServer, batch_id: int, text: str) -> bool:
    try:
        record = server.batch(batch_id)
    except KeyError:
        return False
    with server.registry.lock:
        return text in record.stdout


# --- real Spark ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("cluster-spark")
    server = LivyTestServer(runner="spark-submit", whitelist=[base])
    try:
        project = Cluster(base, _env(base / "home"))
        project.use(server)
        started = {
            "ok": project.popen("run", "-c", "hdi", "--json", "job.py", "ok"),
            "fail": project.popen("run", "-c", "hdi", "--json", "job.py", "fail"),
            "local": project.popen("run", "-c", "local", "--json", "job.py", "local"),
        }
        runs = {}
        for name, process in started.items():
            out, err = process.communicate(timeout=280)
            runs[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        yield {"project": project, "server": server, "runs": runs}
    finally:
        server.stop()


@pytest.mark.spark
def test_success_on_the_cluster_is_recorded_with_artifacts_log_and_batch(spark_runs):
    project, done = spark_runs["project"], spark_runs["runs"]["ok"]
    record = _record(done)
    assert done.returncode == 0, done.stderr[-3000:]
    assert record["status"] == "completed" and record["exit_code"] == 0
    details = record["details"]
    assert details["livy_batch_name"] == f"sparkjobs-{record['id']}"
    assert details["livy_batch_id"].isdigit() and details["app_id"].startswith("local-")
    assert details["livy_state"] == "success" and details["livy_url"] == spark_runs["server"].url
    # artifacts were listed from the cluster's storage and copied into the run history
    assert [a["path"] for a in record["artifacts"]] == ["outputs/metrics.json"]
    metrics = json.loads((project.home / "runs" / record["id"] / "outputs" / "metrics.json").read_text())
    assert metrics == {
        "greeting": "hello from lib",
        "executor_greeting": "hello from lib",  # the snapshot's modules reached the executors
        "data": "forty-two",
        "cluster": True,
        "shared": (project.store / "shared" / "ws" / "demo").as_uri() + "/",
    }
    assert (project.store / "shared" / "ws" / "demo" / "numbers-ok" / "_SUCCESS").exists()
    log = project.stored_log(record["id"])
    driver_part = log[log.index("--- driver log ---"):]
    assert "PRINTED-BY-THE-SCRIPT ok" in driver_part
    exit_record = json.loads((project.store / "runs" / record["id"] / "exit.json").read_text())
    assert exit_record["exit_code"] == 0
    # The bootstrap hashed each output as it copied it; the record carries those digests.
    stored = (project.store / "runs" / record["id"] / "outputs" / "metrics.json").read_bytes()
    assert exit_record["outputs_sha256"] == {"metrics.json": hashlib.sha256(stored).hexdigest()}
    assert record["artifacts"][0]["sha256"] == hashlib.sha256(stored).hexdigest()


@pytest.mark.spark
def test_the_same_script_runs_unchanged_on_local(spark_runs):
    project, done = spark_runs["project"], spark_runs["runs"]["local"]
    record = _record(done)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((project.home / "runs" / record["id"] / "outputs" / "metrics.json").read_text())
    assert metrics["greeting"] == metrics["executor_greeting"] == "hello from lib"
    assert metrics["cluster"] is False and metrics["data"] == "forty-two"
    assert (project.base / "share" / "ws" / "demo" / "numbers-local" / "_SUCCESS").exists()


@pytest.mark.spark
def test_failure_on_the_cluster_records_the_scripts_exit_code(spark_runs):
    project, done = spark_runs["project"], spark_runs["runs"]["fail"]
    record = _record(done)
    assert done.returncode == 1
    assert record["status"] == "failed" and record["exit_code"] == 3, project.stored_log(record["id"])[-3000:]
    assert "exited with code 3" in record["error"] and "'dead'" in record["error"]
    assert [a["path"] for a in record["artifacts"]] == ["outputs/metrics.json"]  # kept after a failure
    assert "PRINTED-BY-THE-SCRIPT fail" in project.stored_log(record["id"])


@pytest.mark.spark
def test_both_cluster_runs_share_one_stored_snapshot_and_bootstrap(spark_runs):
    project = spark_runs["project"]
    ok, fail = (_record(spark_runs["runs"][name]) for name in ("ok", "fail"))
    assert ok["snapshot"] == fail["snapshot"]
    assert [p.name for p in (project.store / "snapshots").iterdir()] == [ok["snapshot"]]
    assert len(list((project.store / "bootstrap").iterdir())) == 1


# --- polling, faults and identity (python runner) ------------------------------------------------


def test_success_streams_livy_log_then_the_driver_log(cluster, fake_livy):
    cluster.use(fake_livy)
    done, record = cluster.run("-c", "hdi", "sleeper.py", "0.5", "0")
    assert done.returncode == 0, done.stderr
    assert record["status"] == "completed" and record["exit_code"] == 0
    assert [a["path"] for a in record["artifacts"]] == ["outputs/note.txt"]
    lines = done.stderr.splitlines()
    header = lines.index("--- driver log ---")
    assert "STARTED" in lines[:header] and "FINISHED" in lines[header:]  # live from Livy, then the stored log
    assert any(line.startswith("sparkjobs: Livy batch 0 (sparkjobs-") for line in lines)
    assert not (cluster.store / "runs" / record["id"] / "_credentials.json").exists()
    request = fake_livy.batch(0).body
    assert request["name"] == f"sparkjobs-{record['id']}"
    assert request["file"].startswith(cluster.store.as_uri() + "/bootstrap/") and request["file"].endswith("/driver.py")
    assert request["pyFiles"][0].endswith("/sparkjobs-runtime.zip")
    assert request["args"] == [(cluster.store / "runs" / record["id"] / "launch.json").as_uri()]
    assert request["conf"]["spark.yarn.maxAppAttempts"] == "1"
    assert "spark.redaction.regex" in request["conf"]


def test_a_one_file_change_uploads_one_object(cluster, fake_livy):
    cluster.use(fake_livy)
    objects = lambda: sorted(p.name for p in (cluster.store / "objects").rglob("*") if p.is_file())
    first, _ = cluster.run("-c", "hdi", "sleeper.py", "0", "0")
    before = objects()
    write(cluster.project / "lib" / "helper.py", "def greet():\n    return 'changed'\n")
    second, _ = cluster.run("-c", "hdi", "sleeper.py", "0", "0")
    assert first.returncode == second.returncode == 0, second.stderr
    assert len(set(objects()) - set(before)) == 1
    assert len(list((cluster.store / "bootstrap").iterdir())) == 1


def test_polling_survives_502_and_503_storms(cluster, fake_livy, gateway_factory):
    gateway = gateway_factory(fake_livy.url)
    env = cluster.behind(gateway)
    gateway.fail_next(4, 502, methods=("GET",))
    gateway.fail_next(4, 503, methods=("GET",))
    done, record = cluster.run("-c", "hdi", "sleeper.py", "1", "0", env=env)
    assert done.returncode == 0, done.stderr
    assert record["status"] == "completed" and gateway.faults_left() == 0
    assert "FINISHED" in cluster.stored_log(record["id"])


def test_connection_dropped_after_the_post_makes_no_duplicate_batch(cluster, fake_livy, gateway_factory):
    gateway = gateway_factory(fake_livy.url)
    env = cluster.behind(gateway)
    gateway.drop_after_next_post()
    done, record = cluster.run("-c", "hdi", "sleeper.py", "0", "0", env=env)
    assert done.returncode == 0, done.stderr
    assert record["status"] == "completed"
    assert fake_livy.batch_count() == 1 and fake_livy.count("POST") == 1 and gateway.count("POST") == 1


def test_batch_killed_on_the_server_is_recorded_killed(cluster, fake_livy):
    cluster.use(fake_livy)
    done, record = cluster.run_while(fake_livy, lambda process: fake_livy.kill_batch(0))
    assert done.returncode == 1, done.stderr
    assert record["status"] == "killed" and "was killed" in record["error"]
    assert fake_livy.count("DELETE") == 0


def test_batch_deleted_by_another_client_is_recorded_killed(cluster, fake_livy):
    """Another client's DELETE: Livy kills the job and forgets the batch at once (404 next)."""
    cluster.use(fake_livy)
    import requests

    def delete(process: subprocess.Popen) -> None:
        answer = requests.delete(f"{fake_livy.url}/batches/0", headers={"X-Requested-By": "colleague"}, timeout=10)
        assert answer.status_code == 200

    done, record = cluster.run_while(fake_livy, delete)
    assert done.returncode == 1, done.stderr
    assert record["status"] == "killed" and record["exit_code"] is None
    assert "another client deleted it" in record["error"] and "no exit code" in record["error"]
    assert "retain" not in record["error"]  # not a finished batch forgotten after its retention


def test_ctrl_c_deletes_the_batch_and_records_killed(cluster, fake_livy):
    cluster.use(fake_livy)

    def interrupt(process: subprocess.Popen) -> None:
        time.sleep(0.5)  # a poll or two into the stream
        process.send_signal(signal.SIGINT)  # no TTY: the CLI kills rather than asking

    done, record = cluster.run_while(fake_livy, interrupt)
    assert done.returncode == 1, done.stderr
    assert record["status"] == "killed" and "deleted" in record["error"]
    assert fake_livy.count("DELETE") == 1 and fake_livy.batch_count() == 0
    assert "Traceback" not in done.stderr


def test_batch_forgotten_while_watched_is_finished_from_storage(cluster, livy_server_factory):
    server = livy_server_factory(runner="python", retention=0)  # forgotten the moment it ends
    cluster.use(server)
    done, record = cluster.run("-c", "hdi", "sleeper.py", "0.5", "4")
    assert done.returncode == 1, done.stderr
    assert record["status"] == "failed" and record["exit_code"] == 4  # from runs/<id>/exit.json
    assert "Livy forgot batch 0" in record["error"]
    assert "FINISHED" in cluster.stored_log(record["id"])


def test_detach_then_attach_completes_the_record(cluster, fake_livy):
    cluster.use(fake_livy)
    done, record = cluster.run("-c", "hdi", "--detach", "sleeper.py", "1", "0")
    assert done.returncode == 0, done.stderr
    assert record["status"] == "running" and record["details"]["livy_batch_id"] == "0"
    shown = json.loads(cluster.cli("runs", "show", record["id"], "--json").stdout)
    assert shown["status"] == "running"
    attached = cluster.cli("runs", "attach", record["id"], "--json")
    final = _record(attached)
    assert attached.returncode == 0, attached.stderr
    assert final["status"] == "completed" and final["exit_code"] == 0 and final["details"]["app_id"]
    assert [a["path"] for a in final["artifacts"]] == ["outputs/note.txt"]
    assert "FINISHED" in cluster.stored_log(record["id"])
    assert fake_livy.batch_count() == 1


def test_attach_after_retention_finishes_the_record_from_storage(cluster, fake_livy):
    cluster.use(fake_livy)
    done, record = cluster.run("-c", "hdi", "--detach", "sleeper.py", "0", "5")
    assert done.returncode == 0, done.stderr
    _wait_for(lambda: fake_livy.batch(0).state == "dead", what="the batch to end")
    fake_livy.expire_retention()
    attached = cluster.cli("runs", "attach", record["id"], "--json")
    final = _record(attached)
    assert attached.returncode == 1
    assert final["status"] == "failed" and final["exit_code"] == 5
    assert "Livy no longer knows batch" in final["error"]


def test_attach_refuses_a_reused_id_after_a_livy_restart(cluster, fake_livy, tmp_path):
    cluster.use(fake_livy)
    done, record = cluster.run("-c", "hdi", "--detach", "sleeper.py", "60", "0")
    assert done.returncode == 0, done.stderr
    fake_livy.restart()  # forgets every batch and counts ids from 0 again
    other = write(tmp_path / "other.py", "import time\ntime.sleep(30)\n")
    import requests

    answer = requests.post(f"{fake_livy.url}/batches", json={"file": str(other), "name": "someone-else"},
                           headers={"X-Requested-By": "test"}, timeout=10)
    assert answer.json()["id"] == 0
    attached = cluster.cli("runs", "attach", record["id"])
    assert attached.returncode == 2
    errors = [line for line in attached.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "someone-else" in errors[0] and "restarted" in errors[0]
    assert "Traceback" not in attached.stderr
    assert fake_livy.count("DELETE") == 0 and fake_livy.batch(0).state == "running"  # not touched
    # Nothing can watch the run any more: it is settled, not left running for ever.
    shown = json.loads(cluster.cli("runs", "show", record["id"], "--json").stdout)
    assert shown["status"] == "failed" and shown["exit_code"] is None and "someone-else" in shown["error"]
    assert "recorded as failed" in errors[0]


def test_livy_restart_while_watching_records_killed_and_leaves_the_new_batch_alone(cluster, fake_livy, tmp_path):
    cluster.use(fake_livy)
    other = write(tmp_path / "other.py", "import time\ntime.sleep(30)\n")

    def restart(process: subprocess.Popen) -> None:
        fake_livy.restart()
        fake_livy.registry.create({"file": str(other), "name": "someone-else"})  # takes id 0

    done, record = cluster.run_while(fake_livy, restart)
    assert done.returncode == 1, done.stderr
    # Livy without recovery stops its batches as it restarts (the test server's restart does too).
    assert record["status"] == "killed" and record["exit_code"] is None
    assert "someone-else" in record["error"] and "Livy restarted" in record["error"] and "no exit code" in record["error"]
    assert fake_livy.count("DELETE") == 0 and fake_livy.batch(0).name == "someone-else"


def test_html_401_is_one_clear_error(cluster, fake_livy, gateway_factory):
    server = fake_livy
    env = dict(cluster.behind(gateway_factory(server.url, auth=("admin", "right-password"))), SPARKJOBS_LIVY_PASSWORD="wrong-password")
    done = cluster.cli("run", "-c", "hdi", "sleeper.py", "0", "0", env=env)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "401" in errors[0] and "<" not in errors[0], done.stderr
    assert "Traceback" not in done.stderr and server.batch_count() == 0
    runs = list((cluster.home / "runs").iterdir())
    assert len(runs) == 1 and json.loads((runs[0] / "run.json").read_text())["status"] == "failed"


def test_missing_livy_password_is_a_config_error(cluster, fake_livy):
    cluster.use(fake_livy, extra="username: admin\n")
    done = cluster.cli("run", "-c", "hdi", "sleeper.py", "0", "0")
    assert done.returncode == 2 and "SPARKJOBS_LIVY_PASSWORD" in done.stderr
    assert fake_livy.batch_count() == 0


def test_dry_run_prints_the_request_and_uploads_nothing(cluster, fake_livy, gateway_factory):
    server = fake_livy
    gateway = gateway_factory(server.url, auth=("admin", "dry-secret-password"))
    cluster.behind(gateway, extra="driverMemory: 2g\nnumExecutors: 3\nqueue: nightly\n")
    write(
        cluster.project / "aml_config" / "spark_dependencies.yml",
        "configuration:\n  spark.sql.shuffle.partitions: 2\npackages: [org.example:lib:1.0]\n"
        "repositories: [https://repo.example/maven]\n",
    )
    env = dict(cluster.env, SPARKJOBS_LIVY_PASSWORD="dry-secret-password")
    done = cluster.cli("run", "-c", "hdi", "--dry-run", "sleeper.py", "1", "0", env=env)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["submit"]
    request = plan["request"]
    assert request["name"].startswith("sparkjobs-") and request["file"].endswith("/driver.py")
    assert request["conf"]["spark.yarn.maxAppAttempts"] == "1"
    assert request["conf"]["spark.jars.packages"] == "org.example:lib:1.0"  # Livy has no packages field
    assert request["conf"]["spark.jars.repositories"] == "https://repo.example/maven"
    assert (request["driverMemory"], request["numExecutors"], request["queue"]) == ("2g", 3, "nightly")
    assert plan["livy"] == {"url": gateway.url, "username": "admin", "password": "***"}
    assert plan["launch_spec"]["snapshot_manifest"].endswith("/manifest.json")
    uploads = {u["what"]: u for u in plan["uploads"]}
    assert uploads["snapshot"]["new_files"] == uploads["snapshot"]["files"] > 0
    assert uploads["bootstrap"]["already_stored"] is False
    assert "dry-secret-password" not in done.stdout + done.stderr
    assert not cluster.store.exists() and server.count("POST") == 0


def test_no_secret_reaches_storage_history_or_output(cluster, fake_livy, gateway_factory):
    secret = secrets.token_urlsafe(24)
    server = fake_livy
    env = cluster.behind(gateway_factory(server.url, auth=("admin", secret)))
    done, record = cluster.run("-c", "hdi", "sleeper.py", "0", "0", env=env)
    assert done.returncode == 0, done.stderr
    shown = cluster.cli("runs", "show", record["id"], "--log", env=env)
    dry = cluster.cli("run", "-c", "hdi", "--dry-run", "sleeper.py", "0", "0", env=env)
    printed = done.stdout + done.stderr + shown.stdout + shown.stderr + dry.stdout + dry.stderr
    assert secret not in printed
    written = [p for root in (cluster.store, cluster.home) for p in root.rglob("*") if p.is_file()]
    assert written and [p for p in written if secret.encode() in p.read_bytes()] == []
    assert secret not in json.dumps(server.batch(0).body)


# --- deadlines and answers that cannot be trusted (issue 7) ----------------------------------------

HOSTILE = """
import sys
print("\\x1b]0;pwned\\x07\\x1b[31mred\\x1b[0m and\\rplain\\ttab", flush=True)
print("\\x1b[2Jcleared?", file=sys.stderr, flush=True)
"""


def _errors(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("Error:")]


def test_a_batch_stuck_starting_is_deleted_at_the_start_deadline(cluster, fake_livy):
    cluster.use(fake_livy, extra="startTimeoutMinutes: 0.03\n")  # 1.8 s; polls every 0.2 s
    fake_livy.hold_in_starting(1)
    done, record = cluster.run("-c", "hdi", "sleeper.py", "0", "0")
    assert done.returncode == 1, done.stderr
    assert record["status"] == "failed" and record["exit_code"] is None
    assert record["details"]["livy_state"] == "starting"
    assert "Livy batch 0 was still 'starting' after" in record["error"]
    assert "sparkjobs deleted it" in record["error"] and "startTimeoutMinutes in aml_config/hdi.compute" in record["error"]
    progress = [line for line in done.stderr.splitlines() if "still starting after" in line]
    assert progress and progress[0].startswith("sparkjobs: Livy batch 0 still starting after"), done.stderr
    assert fake_livy.count("DELETE") == 1 and fake_livy.batch_count() == 0
    assert "Traceback" not in done.stderr
    assert not (cluster.store / "runs" / record["id"] / "_credentials.json").exists()


@pytest.mark.parametrize("value", ["0", "-5", "'soon'", "20000"])
def test_the_start_deadline_must_be_a_sensible_number_of_minutes(cluster, fake_livy, value):
    cluster.use(fake_livy, extra=f"startTimeoutMinutes: {value}\n")
    done = cluster.cli("run", "-c", "hdi", "sleeper.py", "0", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = _errors(done)
    assert len(errors) == 1 and "hdi.compute" in errors[0] and "'startTimeoutMinutes'" in errors[0], done.stderr
    assert not (cluster.home / "runs").exists() and fake_livy.count("POST") == 0


def test_success_without_an_exit_record_is_recorded_failed(cluster, fake_livy):
    cluster.use(fake_livy)
    fake_livy.run_instead([sys.executable, "-c", "print('the bootstrap never ran')"])  # exits 0
    done, record = cluster.run("-c", "hdi", "sleeper.py", "0", "0")
    assert done.returncode == 1, done.stderr
    assert record["status"] == "failed" and record["exit_code"] is None
    assert record["details"]["livy_state"] == "success"
    exit_file = cluster.store / "runs" / record["id"] / "exit.json"
    assert f"Livy reported success but the job never wrote its exit record at {exit_file}" in record["error"]
    assert "bootstrap may not have run" in record["error"]


def test_control_sequences_from_the_cluster_never_reach_the_terminal(cluster, fake_livy):
    cluster.use(fake_livy)
    write(cluster.project / "hostile.py", HOSTILE)
    done, record = cluster.run("-c", "hdi", "hostile.py")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    header = lines.index("--- driver log ---")
    shown = "red andplain\ttab"
    assert shown in lines[:header] and shown in lines[header:]  # live from Livy, then the stored log
    assert "cleared?" in lines[header:]
    printed = done.stdout + done.stderr + cluster.stored_log(record["id"])
    assert "pwned" not in printed and [c for c in printed if ord(c) < 32 and c not in "\t\n"] == []
    raw = (cluster.store / "runs" / record["id"] / "driver.log").read_text()
    assert "\x1b]0;pwned\x07" in raw  # the job's own log in storage is kept as it was written


def test_a_201_naming_another_batch_fails_the_submission_without_adopting_it(cluster, fake_livy, tmp_path):
    cluster.use(fake_livy)
    other = write(tmp_path / "other.py", "import time\ntime.sleep(30)\n")
    fake_livy.registry.create({"file": str(other), "name": "someone-else"})  # batch 0
    fake_livy.answer_posts_with(0, 2, create=False)  # answered with batch 0 twice; ours never made
    done = cluster.cli("run", "-c", "hdi", "--json", "sleeper.py", "0", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = _errors(done)
    assert len(errors) == 1, done.stderr
    assert "Livy answered the submission with batch 0 named 'someone-else', not 'sparkjobs-" in errors[0]
    runs = list((cluster.home / "runs").iterdir())
    assert len(runs) == 1
    record = json.loads((runs[0] / "run.json").read_text())
    assert record["status"] == "failed" and "someone-else" in record["error"]
    assert "livy_batch_name" not in record["details"] and "livy_batch_id" not in record["details"]
    assert fake_livy.count("DELETE") == 0 and fake_livy.batch(0).state == "running"  # not touched
    assert not (cluster.store / "runs" / record["id"] / "_credentials.json").exists()


def test_a_201_naming_another_batch_is_settled_by_our_batchs_name(cluster, fake_livy, tmp_path):
    cluster.use(fake_livy)
    other = write(tmp_path / "other.py", "import time\ntime.sleep(30)\n")
    fake_livy.registry.create({"file": str(other), "name": "someone-else"})  # batch 0
    fake_livy.answer_posts_with(0, 1, create=True)  # ours is batch 1, but the answer names batch 0
    done, record = cluster.run("-c", "hdi", "sleeper.py", "0", "0")
    assert done.returncode == 0, done.stderr
    assert record["status"] == "completed"
    assert record["details"]["livy_batch_id"] == "1"
    assert record["details"]["livy_batch_name"] == f"sparkjobs-{record['id']}"
    assert fake_livy.count("POST") == 1 and fake_livy.count("DELETE") == 0


# --- storage credentials with Azurite ------------------------------------------------------------


def _blob_names(azurite, container: str) -> set[str]:
    client = azurite.container_client(container)
    return {blob.name for blob in client.list_blobs()} if client.exists() else set()


@pytest.mark.azurite
def test_storage_key_reaches_the_driver_only_through_a_file_that_is_deleted(cluster, fake_livy, azurite, azurite_container):
    """Storage in Azurite, reached through its connection string. The batch itself cannot run
    here: local Spark has no wasb driver, and the test server's python runner cannot open a
    wasbs:// file, so the batch ends 'dead' at once. What is checked is everything submit wrote
    and sent, and that the key shows up nowhere but in the credentials file, which goes."""
    from sparkjobs.run_flow import prepare
    from sparkjobs.runs import RunStatus
    from sparkjobs.service import RunObserver, RunRequest, SparkJobs

    account_host = f"{azurite.account}.blob.core.windows.net"
    storage = f"wasbs://{azurite_container}@{account_host}/team"
    cluster.use(fake_livy, storage=storage)
    env = dict(cluster.env, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    key_setting = f"fs.azure.account.key.{account_host}"
    container = azurite.container_client(azurite_container)

    _, plan, target = prepare(SparkJobs(env), RunRequest(cluster.project, "hdi", "sleeper.py", ("0", "0")), RunObserver())
    assert dict(plan.hadoop_secrets) == {key_setting: azurite.key}
    assert plan.env["SPARKJOBS_OUTPUTS"] == f"{storage}/runs/{plan.run_id}/outputs/"
    assert plan.env["SPARKJOBS_SHARED"] == f"{storage}/shared/ws/demo/"
    execution = target.submit(plan)
    run = f"team/runs/{plan.run_id}"
    stored = _blob_names(azurite, azurite_container)
    assert f"team/snapshots/{plan.snapshot.digest}/COMPLETE" in stored
    assert {f"{run}/launch.json", f"{run}/_credentials.json"} <= stored
    assert any(n.startswith("team/bootstrap/") and n.endswith("/driver.py") for n in stored)
    assert any(n.startswith("team/bootstrap/") and n.endswith("/sparkjobs-runtime.zip") for n in stored)
    spec = json.loads(container.download_blob(f"{run}/launch.json").readall())
    assert spec["credentials_uri"] == f"{storage}/runs/{plan.run_id}/_credentials.json"
    assert spec["snapshot_manifest"] == f"{storage}/snapshots/{plan.snapshot.digest}/manifest.json"
    assert spec["objects_uri"] == f"{storage}/objects/" and spec["exit_uri"] == f"{storage}/runs/{plan.run_id}/exit.json"
    written = json.loads(container.download_blob(f"{run}/_credentials.json").readall())
    assert written["hadoop"] == {key_setting: azurite.key}  # what the driver will read
    assert azurite.key in written["mask"] and set(written) == {"hadoop", "mask"}  # and masks in its log
    body = fake_livy.batch(0).body
    assert body["file"].startswith(f"{storage}/bootstrap/") and body["args"] == [f"{storage}/runs/{plan.run_id}/launch.json"]
    assert re.search(body["conf"]["spark.redaction.regex"], key_setting)  # Spark redacts it if it ever shows
    assert azurite.key not in json.dumps(body)

    lines: list[str] = []
    execution.stream(lines.append)
    outcome = execution.wait()
    assert outcome.status is RunStatus.FAILED and outcome.outputs_store is not None
    assert f"{run}/_credentials.json" not in _blob_names(azurite, azurite_container)

    # The same through the CLI: the key is in no record, log, printed line or blob.
    done, record = cluster.run("-c", "hdi", "sleeper.py", "0", "0", env=env)
    shown = cluster.cli("runs", "show", record["id"], "--log", env=env)
    dry = cluster.cli("run", "-c", "hdi", "--dry-run", "sleeper.py", "0", "0", env=env)
    assert record["status"] == "failed" and dry.returncode == 0, dry.stderr
    printed = done.stdout + done.stderr + shown.stdout + shown.stderr + dry.stdout + dry.stderr
    assert azurite.key not in printed and "\n".join(lines).find(azurite.key) == -1
    local = [p for p in cluster.home.rglob("*") if p.is_file() and azurite.key.encode() in p.read_bytes()]
    assert local == []
    leaked = [n for n in _blob_names(azurite, azurite_container) if azurite.key.encode() in container.download_blob(n).readall()]
    assert leaked == []
    assert not any(n.endswith("_credentials.json") for n in _blob_names(azurite, azurite_container))


@pytest.mark.azurite
def test_dry_run_against_azure_shows_secrets_as_stars_and_uploads_nothing(cluster, fake_livy, azurite, azurite_container):
    storage = f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net/team"
    cluster.use(fake_livy, storage=storage)
    env = dict(cluster.env, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    done = cluster.cli("run", "-c", "hdi", "--dry-run", "sleeper.py", "0", "0", env=env)
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    key_setting = f"fs.azure.account.key.{azurite.account}.blob.core.windows.net"
    assert described["hadoop_secrets"] == {key_setting: "***"}
    uploads = {u["what"]: u for u in described["submit"]["uploads"]}
    assert uploads["credentials"]["content"] == {"hadoop": {key_setting: "***"}}
    assert uploads["credentials"]["to"] == f"{storage}/runs/{described['run_id']}/_credentials.json"
    assert azurite.key not in done.stdout + done.stderr
    assert _blob_names(azurite, azurite_container) == set() and fake_livy.count("POST") == 0


@pytest.mark.azurite
def test_submitting_an_unchanged_project_to_azure_storage_loads_no_azure_sdk(cluster, fake_livy, azurite, azurite_container):
    """Issue 9's submission target: importing azure-storage-blob costs ~0.2 s of CPU, and what a
    submission of an unchanged project does in storage (is the snapshot there, put the launch
    spec and the credentials) goes as signed requests of sparkjobs' own. The real CLI runs in a
    subprocess and its ``sys.modules`` is read at exit; nothing is timed."""
    from test_startup_imports import _WRAPPER

    storage = f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net/team"
    cluster.use(fake_livy, storage=storage)
    env = dict(cluster.env, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    first = cluster.cli("run", "-c", "hdi", "--detach", "sleeper.py", "0", "0", env=env)  # stores the snapshot
    assert first.returncode == 0, first.stderr
    out = cluster.base / "modules.json"
    argv = [sys.executable, "-c", _WRAPPER, str(out), *cluster._with_project(("run", "-c", "hdi", "--detach", "sleeper.py", "0", "0"))]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert fake_livy.count("POST") == 2
    modules = set(json.loads(out.read_text()))
    assert "sparkjobs.storage.blob_rest" in modules  # storage was really written to
    assert sorted(m for m in modules if m.startswith(("azure.storage.blob", "azure.core"))) == []
    second = fake_livy.batch(1).body["args"][0].split(f"{azurite.account}.blob.core.windows.net/", 1)[1]
    stored = _blob_names(azurite, azurite_container)
    assert second in stored  # the launch spec of the second run, written without the SDK
    spec = json.loads(azurite.container_client(azurite_container).download_blob(second).readall())
    assert spec["snapshot_manifest"].endswith("/manifest.json")


# --- pure functions ------------------------------------------------------------------------------


def test_hdinsight_links_appear_once_the_application_is_known():
    from livy import Batch, BatchState
    from sparkjobs.targets.livy_execution import batch_details

    url = "https://mycluster.azurehdinsight.net/livy"
    starting = Batch(id=7, state=BatchState.STARTING, state_raw="starting", name="sparkjobs-r")
    assert batch_details(url, starting, "sparkjobs-r") == {"livy_url": url, "livy_batch_id": "7", "livy_batch_name": "sparkjobs-r"}
    running = Batch(id=7, state=BatchState.RUNNING, state_raw="running", name="sparkjobs-r", app_id="application_1_0007")
    details = batch_details(url, running, "sparkjobs-r")
    assert details["yarn_ui"] == "https://mycluster.azurehdinsight.net/yarnui/hn/cluster/app/application_1_0007"
    assert details["spark_history"] == "https://mycluster.azurehdinsight.net/sparkhistory/history/application_1_0007/jobs"
    assert "yarn_ui" not in batch_details("http://127.0.0.1:8998", running, "sparkjobs-r")


@pytest.mark.parametrize("value", ["0", "-1", "soon", "601"])
def test_poll_interval_must_be_a_sensible_number(value):
    from sparkjobs.errors import ConfigError
    from sparkjobs.targets.cluster import LivyTarget

    with pytest.raises(ConfigError, match="SPARKJOBS_LIVY_POLL_SECONDS"):
        LivyTarget({"SPARKJOBS_LIVY_POLL_SECONDS": value})
