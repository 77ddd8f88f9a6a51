"""Faults on HDInsight in a box (tests/plugins/hdinsight.py), through the real CLI: the HTTPS
gateway, real Apache Livy 0.7.1, spark-submit in yarn-cluster mode on a real YARN, the real wasb
driver on Azurite over HTTPS.

- **A kill from outside**: another client's ``DELETE /batches/ID``, straight to Livy, ends a
  watched run: it is recorded ``killed``, and ``sparkjobs run`` exits 1.
- **No secret anywhere**: one real run that attaches the second account (its key made for the
  session, as is the gateway's password); every place a key or the password could land is
  read, in plain, base64 and URL-encoded forms (``secret_scan.py``).
- **Livy restarts** (without recovery, as configured) while one run is watched and another is
  detached: the watched run is recorded as what is true, and ``runs attach`` of the detached
  one refuses the new batch that Livy now reports under the old id.

Batches are slow here (40-90 s each): four YARN applications in all, two of them side by side.
The restart test comes last: it takes Livy away from everything else.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from helpers import cli, cli_json, write
from plugins.azurite_tls import SECOND_ACCOUNT
from plugins.hdinsight import HDInsight
from secret_scan import HistoryServer, ProcessWatch, find_secrets, secret_forms

pytestmark = [pytest.mark.spark, pytest.mark.azurite, pytest.mark.timeout(1800)]

SLEEPY = """
import sys, time
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
print("SLEEPY STARTED", flush=True)
time.sleep(int(sys.argv[1]))
print("SLEEPY DONE", flush=True)
"""
# Reads and writes the attached account from the executors, and writes an output.
ATTACHED = """
import sys
from pyspark.sql import SparkSession
from sparkjobs import context

spark = SparkSession.builder.getOrCreate()
other = sys.argv[1].rstrip("/")
numbers = spark.read.csv(other + "/input/numbers.csv", header=True, inferSchema=True)
numbers.selectExpr("n * 2 AS doubled").write.parquet(other + "/doubled")
total = spark.read.parquet(other + "/doubled").groupBy().sum("doubled").first()[0]
with open("outputs/total.txt", "w") as out:
    out.write(str(total))
print("ATTACHED TOTAL", total, flush=True)
"""
RUNNING = re.compile(r"^sparkjobs: Livy batch (\d+)(?: \([^)]*\))? is running, application (application_\d+_\d+)\.$")
BATCH_WAIT = 900.0  # seconds; a bound, not an expectation


@dataclass(frozen=True)
class Box:
    h: HDInsight
    project: Path
    container: str
    other: str  # a folder in the second account
    env: dict[str, str]
    home: Path

    def blob_names(self) -> list[str]:
        return sorted(b.name for b in self.h.azurite.container_client(self.container).list_blobs())

    def blob(self, name: str) -> bytes:
        return self.h.azurite.container_client(self.container).download_blob(name).readall()


@pytest.fixture(scope="module")
def box(hdinsight: HDInsight, tmp_path_factory: pytest.TempPathFactory) -> Box:
    folder = tmp_path_factory.mktemp("faults")
    container = f"faults-{uuid.uuid4().hex[:12]}"
    project = hdinsight.write_project(folder / "project", container, hdi_extra=f"attachStorage: [{SECOND_ACCOUNT}]\n")
    write(project / "sleepy.py", SLEEPY)
    write(project / "attached.py", ATTACHED)
    data = hdinsight.azurite.container_client("data", SECOND_ACCOUNT)
    if not data.exists():
        data.create_container()
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    data.upload_blob(f"{prefix}/input/numbers.csv", ("n\n" + "".join(f"{n}\n" for n in range(1, 11))).encode())
    credentials = hdinsight.write_credentials(folder / "user" / "credentials.json")
    home = folder / "sparkjobs-home"
    env = hdinsight.cli_env(credentials, SPARKJOBS_HOME=str(home), SPARKJOBS_LIVY_POLL_SECONDS="2")
    return Box(hdinsight, project, container, hdinsight.storage("data", prefix, SECOND_ACCOUNT), env, home)


@dataclass
class Watched:
    """``sparkjobs run --json ...`` in the background; its stderr is read as it comes."""

    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, box: Box, *args: str) -> Watched:
        process = subprocess.Popen(
            [sys.executable, "-m", "sparkjobs.cli", "run", "--json", "--project", str(box.project), "-c", "hdi", *args],
            env=box.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )
        watched = cls(process)
        watched._reader = threading.Thread(target=watched._read, daemon=True)
        watched._reader.start()
        return watched

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: re.Pattern[str], what: str, timeout: float = BATCH_WAIT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                seen += 1
                if found := pattern.search(line):
                    return found
            if self.process.poll() is not None and self._reader is not None and not self._reader.is_alive():
                break
            time.sleep(0.5)
        raise AssertionError(f"no {what} (exit {self.process.poll()}):\n" + "\n".join(self.lines[-60:]))

    def finish(self, timeout: float = BATCH_WAIT) -> tuple[subprocess.CompletedProcess, dict]:
        try:
            out, _ = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=30)
        if self._reader is not None:
            self._reader.join(timeout=30)
        err = "\n".join(self.lines)
        done = subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)
        try:
            return done, json.loads(out)
        except ValueError:
            raise AssertionError(f"no JSON record (exit {done.returncode}):\n{out}\n{err[-6000:]}") from None


def _until(condition: Callable[[], bool], what: str, timeout: float = BATCH_WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def _driver_printed(box: Box, app_id: str, marker: str) -> Callable[[], bool]:
    """Whether the driver (in a YARN container) has printed marker: the job really runs."""
    return lambda: any(marker in text for name, text in box.h.cluster.container_logs(app_id).items()
                       if name.endswith("/stdout"))


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


# ---- a kill from outside ---------------------------------------------------------------------
def test_a_delete_from_another_client_is_recorded_killed(box: Box) -> None:
    run = Watched.start(box, "sleepy.py", "300")
    running = run.wait_for(RUNNING, "running batch with its application")
    batch_id, app_id = running.group(1), running.group(2)
    _until(_driver_printed(box, app_id, "SLEEPY STARTED"), "the driver to start")
    # A colleague's client (or the YARN UI's kill, through Livy): straight to Livy, not the gateway.
    answer = requests.delete(f"{box.h.cluster.livy_url}/batches/{batch_id}", headers={"X-Requested-By": "colleague"},
                             timeout=60)
    assert answer.status_code == 200, answer.text
    done, record = run.finish()
    assert done.returncode == 1, done.stderr[-6000:]
    assert record["status"] == "killed" and record["exit_code"] is None, record
    assert record["details"]["app_id"] == app_id
    assert "Traceback" not in done.stderr and "SLEEPY DONE" not in done.stderr
    stored = json.loads((box.home / "runs" / record["id"] / "run.json").read_text())
    assert stored["status"] == "killed" and stored["error"] == record["error"]


# ---- secrets ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def attached_run(box: Box) -> Iterator[dict]:
    """One run that attaches the second account, with every process on the machine read
    (command line and environment) while it runs."""
    watch = ProcessWatch(ignore={box.h.azurite.pid})  # the storage service holds its own keys
    with watch.running():
        done, record = cli_json("run", "--json", "--project", str(box.project), "-c", "hdi", "attached.py", box.other,
                                env=box.env, timeout=int(BATCH_WAIT))
    yield {"done": done, "record": record, "processes": watch}


def test_the_attached_run_succeeds(box: Box, attached_run: dict) -> None:
    done, record = attached_run["done"], attached_run["record"]
    assert done.returncode == 0 and record["status"] == "completed", (done.stdout + done.stderr)[-6000:]
    assert "ATTACHED TOTAL 110" in done.stderr


def test_the_scan_finds_each_secret_in_each_form(box: Box) -> None:
    """The scan's own check: where the secrets are, it finds them (no batch needed)."""
    import base64
    from urllib.parse import quote

    forms = secret_forms(box.h.secrets(), username=box.h.username)
    key, password = box.h.secrets()
    credentials = Path(box.env["SPARKJOBS_CREDENTIALS"]).read_text()
    header = "Authorization: Basic " + base64.b64encode(f"{box.h.username}:{password}".encode()).decode()
    for place, text in {"credentials": credentials, "header": header, "query": f"?sig={quote(key, safe='')}&x=1",
                        "blob": "x" + base64.b64encode(b"ab" + key.encode() + b"c").decode()}.items():
        assert find_secrets({place: text}, forms), place


def test_no_secret_in_livy_logs_printed_output_or_run_store(box: Box, attached_run: dict) -> None:
    done, record = attached_run["done"], attached_run["record"]
    forms = secret_forms(box.h.secrets(), username=box.h.username)
    batch = requests.get(f"{box.h.cluster.livy_url}/batches/{record['details']['livy_batch_id']}/log",
                         params={"from": 0, "size": -1}, timeout=60).json()
    places = {
        "Livy's server log": box.h.cluster.livy_log_text(),
        "the batch log": "\n".join(batch.get("log") or ()),
        "printed output": done.stdout + done.stderr,
    }
    for path in sorted(box.home.rglob("*")):
        if path.is_file():
            places[f"run store {path.relative_to(box.home)}"] = path.read_bytes().decode(errors="replace")
    assert find_secrets(places, forms) == []


def test_no_secret_in_any_blob(box: Box, attached_run: dict) -> None:
    forms = secret_forms(box.h.secrets(), username=box.h.username)
    names = box.blob_names()
    assert f"team/runs/{attached_run['record']['id']}/exit.json" in names, names
    assert not any(name.endswith("_credentials.json") for name in names), names  # read, then deleted
    places = {f"blob {name}": box.blob(name).decode("latin-1") for name in names}
    other = box.h.azurite.container_client("data", SECOND_ACCOUNT)
    places |= {f"blob data/{b.name} ({SECOND_ACCOUNT})": other.download_blob(b.name).readall().decode("latin-1")
               for b in other.list_blobs()}
    assert find_secrets(places, forms) == []


def test_no_secret_in_yarn_container_logs_or_the_spark_event_log(box: Box, attached_run: dict) -> None:
    forms = secret_forms(box.h.secrets(), username=box.h.username)
    app_id = attached_run["record"]["details"]["app_id"]
    logs = box.h.cluster.container_logs(app_id)
    assert any("ATTACHED TOTAL 110" in text for text in logs.values()), sorted(logs)
    events = sorted(box.h.cluster.event_log_dir.glob(f"{app_id}*"))
    assert events, sorted(p.name for p in box.h.cluster.event_log_dir.iterdir())
    places = {f"container {name}": text for name, text in logs.items()}
    places |= {f"event log {p.name}": p.read_text(errors="replace") for p in events}
    assert find_secrets(places, forms) == []


def test_no_secret_on_the_applications_environment_page(box: Box, attached_run: dict, tmp_path: Path) -> None:
    forms = secret_forms(box.h.secrets(), username=box.h.username)
    app_id = attached_run["record"]["details"]["app_id"]
    with HistoryServer.start(box.h.cluster, tmp_path) as history:
        # In yarn-cluster mode the application has attempts: its pages are under the attempt's id.
        attempt = history.get(f"/api/v1/applications/{app_id}")["attempts"][-1].get("attemptId")
        environment = history.get(f"/api/v1/applications/{app_id}/{attempt + '/' if attempt else ''}environment")
    # The page is the real one: it lists the Spark and Hadoop properties of the application.
    properties = dict(environment["sparkProperties"])
    assert properties["spark.app.id"] == app_id, sorted(properties)
    hadoop = dict(environment["hadoopProperties"])
    assert "fs.azure.account.keyprovider.devstoreaccount1.blob.core.windows.net" in hadoop, sorted(hadoop)[:20]
    assert find_secrets({"environment page": json.dumps(environment)}, forms) == []


def test_no_secret_in_any_process_command_line_or_environment(box: Box, attached_run: dict) -> None:
    watch: ProcessWatch = attached_run["processes"]
    # The processes that matter were seen while the job ran.
    seen = watch.kinds({
        "sparkjobs": "sparkjobs.cli",
        "Livy": "org.apache.livy.server.LivyServer",
        "YARN": "MiniYarn",
        "spark-submit": "org.apache.spark.deploy.SparkSubmit",
        "driver (application master)": "org.apache.spark.deploy.yarn.ApplicationMaster",
        "executor": "YarnCoarseGrainedExecutorBackend",
    })
    assert all(seen.values()), seen
    forms = secret_forms(box.h.secrets(), username=box.h.username)
    assert watch.leaks(forms) == []


# ---- Livy restarts ---------------------------------------------------------------------------
def _other_batch_under(box: Box, batch_id: int, upload: Path) -> str:
    """After a restart: new batches until one has ``batch_id`` (ids start from 0 again); each
    names a file that does not exist, so spark-submit fails at once and nothing reaches YARN."""
    name = ""
    for attempt in range(batch_id + 1):
        name = f"someone-else-{uuid.uuid4().hex[:8]}"
        answer = requests.post(f"{box.h.cluster.livy_url}/batches", headers={"X-Requested-By": "colleague"},
                               json={"file": (upload / f"{name}.py").as_uri(), "name": name}, timeout=60)
        assert answer.status_code == 201, answer.text
        if answer.json()["id"] == batch_id:
            return name
    raise AssertionError(f"Livy did not count its ids from 0 again: {answer.json()}")


def test_livy_restart_while_watched_and_attach_refuses_the_new_batch_under_the_old_id(box: Box) -> None:
    detached, detached_record = cli_json("run", "--json", "--detach", "--project", str(box.project), "-c", "hdi",
                                         "sleepy.py", "300", env=box.env, timeout=int(BATCH_WAIT))
    assert detached.returncode == 0, detached.stderr
    watched = Watched.start(box, "sleepy.py", "300")
    running = watched.wait_for(RUNNING, "running batch with its application")
    app_id = running.group(2)
    _until(_driver_printed(box, app_id, "SLEEPY STARTED"), "the watched driver to start")
    old_id = int(detached_record["details"]["livy_batch_id"])

    box.h.cluster.restart_livy()
    other = _other_batch_under(box, old_id, box.h.cluster.upload_dir)

    done, record = watched.finish()
    # What is true: Livy lost the batch while it ran, and stopped it as it shut down (recovery
    # is off); the driver never wrote an exit code. Neither a success nor a run that runs on.
    assert done.returncode == 1, done.stderr[-6000:]
    assert record["status"] == "killed" and record["exit_code"] is None, record
    assert "Livy restarted" in record["error"] and "no exit code" in record["error"], record["error"]
    assert f"sparkjobs: Livy forgot batch {running.group(1)} " in done.stderr  # the user saw it happen
    assert not _driver_printed(box, app_id, "SLEEPY DONE")()

    attached = cli("runs", "attach", detached_record["id"], "--project", str(box.project), env=box.env, timeout=300)
    assert attached.returncode == 2, attached.stdout + attached.stderr
    errors = _errors(attached.stderr)
    assert len(errors) == 1 and other in errors[0] and "restarted" in errors[0], attached.stderr
    assert "Traceback" not in attached.stderr
    # Nothing can watch the detached run any more: it is settled, not left running for ever.
    _, shown = cli_json("runs", "show", detached_record["id"], "--json", "--project", str(box.project), env=box.env)
    assert shown["status"] == "failed" and shown["exit_code"] is None and other in shown["error"], shown
    # The other client's batch was left alone.
    batch = requests.get(f"{box.h.cluster.livy_url}/batches/{old_id}", timeout=60).json()
    assert batch["name"] == other, batch
