"""The bootstrap under real spark-submit, plus its runtime zip and spec checks.

Every spark-submit run starts at once in one module fixture, since each costs seconds of JVM
start-up on a small box, and the tests then read their results:

- local mode (``snapshot_archive`` and ``outputs_uri`` null, the project folder as cwd): a run
  that succeeds, one that calls ``sys.exit(3)``, one that raises; none of them starts a
  SparkContext, so they are cheap;
- archive mode with ``file://`` URIs for outputs, log and credentials: a job that reads the
  credentials and fails, and a job that stops Spark itself before writing outputs.

Spark's scratch space and every temp folder point into the module's tmp tree, so the test that
looks for the secret scans everything the runs could have written.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import select
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from sparkjobs.bootstrap import BOOTSTRAP_PATH, RUNTIME_MODULES, build_runtime_zip
from sparkjobs.bootstrap.hadoop import Spark, read_json
from sparkjobs.bootstrap.script import exit_code
from sparkjobs.bootstrap.snapshot import ManifestFile, module_paths
from sparkjobs.bootstrap.spec import EXIT_BOOTSTRAP, BootstrapError, LaunchSpec, child_uri, local_path

CREDENTIAL_KEY = "fs.azure.account.key.testacct.blob.core.windows.net"
SNAPSHOT_NAME = "snapshot-0123abcd.zip"

LOCAL_SCRIPT = '''
import json, os, sys
from sparkjobs import context

def report():
    return {
        "run_id": context.run_id(),
        "outputs": context.outputs_path(),
        "user_var": os.environ.get("USER_VAR"),
        "argv": sys.argv[1:],
        "file": __file__,
        "cwd": os.getcwd(),
        "context_file": context.__file__,
        "is_cluster": context.is_cluster(),
    }

if __name__ == "__main__":
    with open(context.outputs_path("report.json"), "w") as handle:
        json.dump(report(), handle)
    print("local job ran")
    if sys.argv[1] == "exit3":
        sys.exit(3)
    if sys.argv[1] == "raise":
        raise ValueError("bad alpha")
'''

FAILING_JOB = '''
import hashlib, json, os, sys
from pyspark.sql import SparkSession
from sparkjobs import context
from common.helper import greet  # a package at the snapshot root
import sibling  # a module beside the script

KEY = sys.argv[2]  # the credential's Hadoop key; sys.argv[1] is the sha256 of its value
ATTACHED = "fs.azure.account.key.otheracct.blob.core.windows.net"

spark = SparkSession.builder.getOrCreate()
hadoop = spark.sparkContext._jsc.hadoopConfiguration()
value = hadoop.get(KEY)
context.attach_storage(spark, "otheracct", key="first-attach")
context.attach_storage(spark, "otheracct", key="second-attach")
context.attach_storage(spark, "otheracct", sas="?sv=1&sig=x", container="data")
checks = {
    "credential_visible": value is not None and hashlib.sha256(value.encode()).hexdigest() == sys.argv[1],
    "attached_kept": hadoop.get(ATTACHED) == "first-attach",
    "sas_set": hadoop.get("fs.azure.sas.data.otheracct.blob.core.windows.net") == "sv=1&sig=x",
    "greeting": greet(),
    # pickled by reference: the executor's Python imports common.helper from the shipped archive
    "executor_greeting": spark.sparkContext.parallelize([1], 1).map(lambda _: greet()).collect()[0],
    "sibling": sibling.NAME,
    "data": open("data/input.txt").read().strip(),
    "outputs_path": context.outputs_path("x.csv"),
    "is_cluster": context.is_cluster(),
    "user_var": os.environ.get("USER_VAR"),
}
os.makedirs("outputs/nested", exist_ok=True)
with open("outputs/nested/checks.json", "w") as handle:
    json.dump(checks, handle)
print("MARKER-STDOUT")
print("MARKER-STDERR", file=sys.stderr)
os.system("echo MARKER-CHILD")
raise RuntimeError("the job failed on purpose")
'''

STOPPING_JOB = '''
from pyspark.sql import SparkSession
from sparkjobs import context

spark = SparkSession.builder.appName("stops-itself").getOrCreate()
count = spark.range(3).count()
spark.range(3).write.json(context.outputs_path("direct"))
spark.stop()
with open("outputs/after_stop.txt", "w") as handle:
    handle.write(f"count={count}")
print("stopped spark myself")
'''

SNAPSHOT_FILES = {
    "jobs/train.py": FAILING_JOB,
    "jobs/stops.py": STOPPING_JOB,
    "jobs/sibling.py": 'NAME = "sibling"\n',
    "common/__init__.py": "",
    "common/helper.py": 'def greet():\n    return "hello from common"\n',
    "data/input.txt": "forty-two\n",
}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    folder: Path  # local mode: the project folder; archive mode: the run's store folder


@dataclass(frozen=True)
class Launch:
    spec: dict
    cwd: Path
    py_files: tuple[Path, ...]
    folder: Path


def _spec(run_id: str, script: str, **fields) -> dict:
    spec = {
        "version": 1,
        "run_id": run_id,
        "script": script,
        "args": [],
        "snapshot_archive": None,
        "env": {},
        "outputs_uri": None,
        "log_uri": None,
        "credentials_uri": None,
    }
    spec.update(fields)
    return spec


def _local_launches(root: Path, runtime: Path) -> dict[str, Launch]:
    launches = {}
    for mode in ("ok", "exit3", "raise"):
        project = root / mode / "project"
        project.mkdir(parents=True)
        (project / "train.py").write_text(LOCAL_SCRIPT)
        env = {"SPARKJOBS_RUN_ID": f"run-{mode}", "SPARKJOBS_OUTPUTS": str(project / "outputs"), "USER_VAR": mode}
        spec = _spec(f"run-{mode}", "train.py", args=[mode, "--alpha", "0.5"], env=env)
        launches[mode] = Launch(spec, project, (runtime,), project)
    return launches


def _archive_launches(root: Path, runtime: Path, secret: str) -> dict[str, Launch]:
    snapshot = root / SNAPSHOT_NAME
    with zipfile.ZipFile(snapshot, "w") as archive:
        for name, text in SNAPSHOT_FILES.items():
            archive.writestr(name, text)
    launches = {}
    for name, script in (("fails", "jobs/train.py"), ("stops", "jobs/stops.py")):
        store = root / name / "store"
        (root / name / "container").mkdir(parents=True)
        store.mkdir()
        outputs_uri = (store / "outputs").as_uri() + "/"
        fields = {
            "args": [hashlib.sha256(secret.encode()).hexdigest(), CREDENTIAL_KEY],
            "snapshot_archive": SNAPSHOT_NAME,
            "env": {"SPARKJOBS_RUN_ID": name, "SPARKJOBS_OUTPUTS": outputs_uri, "USER_VAR": name},
            "outputs_uri": outputs_uri,
            "log_uri": (store / "driver.log").as_uri(),
        }
        if name == "fails":
            credentials = store / "_credentials.json"
            credentials.write_text(json.dumps({"hadoop": {CREDENTIAL_KEY: secret}}))
            fields["credentials_uri"] = credentials.as_uri()
        launches[name] = Launch(_spec(name, script, **fields), root / name / "container", (snapshot, runtime), store)
    return launches


def _start(name: str, launch: Launch, root: Path) -> subprocess.Popen:
    spec_path = root / f"{name}.spec.json"
    spec_path.write_text(json.dumps(launch.spec))
    command = [
        "spark-submit", "--master", "local[1]",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.local.dir={root / 'tmp'}",
        "--conf", f"spark.driver.extraJavaOptions=-Djava.io.tmpdir={root / 'tmp'}",
        "--py-files", ",".join(str(path) for path in launch.py_files),
        str(BOOTSTRAP_PATH), str(spec_path),
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["TMPDIR"] = str(root / "tmp")
    return subprocess.Popen(
        command,
        cwd=launch.cwd,
        env=env,
        stdout=open(root / f"{name}.stdout", "w"),
        stderr=open(root / f"{name}.stderr", "w"),
    )


@pytest.fixture(scope="module")
def secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bootstrap-runs")


@pytest.fixture(scope="module")
def runs(run_root: Path, secret: str) -> dict[str, Run]:
    """Start all five spark-submit runs together and wait for them."""
    (run_root / "tmp").mkdir()
    runtime = build_runtime_zip(run_root)
    launches = {**_local_launches(run_root, runtime), **_archive_launches(run_root, runtime, secret)}
    processes = {name: _start(name, launch, run_root) for name, launch in launches.items()}
    results = {}
    for name, process in processes.items():
        returncode = process.wait(timeout=240)
        results[name] = Run(
            returncode,
            (run_root / f"{name}.stdout").read_text(),
            (run_root / f"{name}.stderr").read_text(),
            launches[name].folder,
        )
    return results


def _report(run: Run) -> dict:
    return json.loads((run.folder / "outputs" / "report.json").read_text())


# --- local mode ---------------------------------------------------------------------------------


@pytest.mark.spark
def test_local_run_sees_its_environment_and_outputs_folder(runs):
    run = runs["ok"]
    assert run.returncode == 0, run.stderr
    report = _report(run)
    assert report["run_id"] == "run-ok"
    assert report["user_var"] == "ok"
    assert report["outputs"] == str(run.folder / "outputs") + os.sep
    assert report["argv"] == ["ok", "--alpha", "0.5"]
    assert report["file"] == str(run.folder / "train.py")
    assert report["cwd"] == str(run.folder)
    assert report["is_cluster"] is False
    assert ".zip" in report["context_file"]  # the shipped runtime zip, not the installed package
    assert "local job ran" in run.stdout


@pytest.mark.spark
def test_local_run_passes_on_the_scripts_exit_code(runs):
    assert runs["exit3"].returncode == 3
    assert _report(runs["exit3"])["run_id"] == "run-exit3"


@pytest.mark.spark
def test_an_uncaught_exception_exits_1_with_the_scripts_traceback(runs):
    run = runs["raise"]
    assert run.returncode == 1
    # The script writes to stderr; spark-submit's PythonRunner merges Python's stderr into stdout.
    console = run.stdout + run.stderr
    traceback_text = console[console.index("Traceback (most recent call last)"):]
    assert "ValueError: bad alpha" in traceback_text
    assert 'train.py", line' in traceback_text
    assert "runpy" not in traceback_text  # starts at the user's frame


# --- archive mode with file:// URIs -------------------------------------------------------------


@pytest.mark.spark
def test_failing_job_still_ships_its_outputs(runs):
    run = runs["fails"]
    assert run.returncode == 1
    checks = json.loads((run.folder / "outputs" / "nested" / "checks.json").read_text())
    assert checks == {
        "credential_visible": True,
        "attached_kept": True,
        "sas_set": True,
        "greeting": "hello from common",
        "executor_greeting": "hello from common",
        "sibling": "sibling",
        "data": "forty-two",
        "outputs_path": (run.folder / "outputs").as_uri() + "/x.csv",
        "is_cluster": True,
        "user_var": "fails",
    }
    assert not list(run.folder.rglob("*.crc"))


@pytest.mark.spark
def test_driver_log_holds_prints_child_output_and_traceback(runs):
    run = runs["fails"]
    log = (run.folder / "driver.log").read_text()
    for marker in ("MARKER-STDOUT", "MARKER-STDERR", "MARKER-CHILD", "RuntimeError: the job failed on purpose"):
        assert marker in log
    assert "MARKER-STDOUT" in run.stdout and "MARKER-STDERR" in run.stdout + run.stderr  # console too


@pytest.mark.spark
def test_credentials_are_deleted_and_the_secret_is_written_nowhere(runs, run_root, secret):
    assert not (runs["fails"].folder / "_credentials.json").exists()
    assert "set 1 Hadoop credential setting: " in runs["fails"].stdout
    leaks = [path for path in run_root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]
    assert leaks == []


@pytest.mark.spark
def test_job_that_stops_spark_itself_still_ships_outputs(runs):
    run = runs["stops"]
    assert run.returncode == 0, run.stderr
    outputs = run.folder / "outputs"
    assert (outputs / "after_stop.txt").read_text() == "count=3"
    assert (outputs / "direct" / "_SUCCESS").exists()  # what the job wrote to the URI itself
    assert "stopped spark myself" in (run.folder / "driver.log").read_text()


@pytest.mark.spark
def test_bootstrap_leaves_no_temp_folders(runs, run_root):
    assert not list((run_root / "tmp").glob("sparkjobs-bootstrap-*"))


# --- without Spark ------------------------------------------------------------------------------


def test_runtime_zip_is_deterministic_and_content_addressed(tmp_path):
    first = build_runtime_zip(tmp_path / "a.zip")
    second = build_runtime_zip(tmp_path / "b.zip")
    assert first.read_bytes() == second.read_bytes()
    assert zipfile.ZipFile(first).namelist() == list(RUNTIME_MODULES)
    folder = tmp_path / "store"
    folder.mkdir()
    named = build_runtime_zip(folder)
    assert named.name == f"sparkjobs-runtime-{hashlib.sha256(first.read_bytes()).hexdigest()[:16]}.zip"
    assert build_runtime_zip(folder) == named
    assert sorted(path.name for path in folder.iterdir()) == [named.name]


def test_runtime_zip_imports_with_the_standard_library_alone(tmp_path):
    runtime = build_runtime_zip(tmp_path)
    code = "import sys; from sparkjobs import context; print(context.__file__, 'pyspark' in sys.modules)"
    # -S: no site-packages, so neither an installed sparkjobs nor pyspark can be found.
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(runtime), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [str(runtime / "sparkjobs" / "context.py"), "False"]


def test_driver_runs_from_the_runtime_zip_alone(tmp_path):
    """A cluster has no sparkjobs: driver.py (Livy's file) imports the bootstrap from the zip."""
    runtime = build_runtime_zip(tmp_path)
    driver = tmp_path / "driver.py"
    driver.write_bytes(BOOTSTRAP_PATH.read_bytes())
    (tmp_path / "job.py").write_text("import sparkjobs.bootstrap.launch as launch\nprint('ran with', launch.__file__)\n")
    (tmp_path / "spec.json").write_text(json.dumps(_spec("r", "job.py")))
    result = subprocess.run(
        [sys.executable, "-S", str(driver), str(tmp_path / "spec.json")],
        cwd=tmp_path,
        env={"PYTHONPATH": str(runtime), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ran with {runtime / 'sparkjobs' / 'bootstrap' / 'launch.py'}\n"
    missing = subprocess.run(
        [sys.executable, "-S", str(driver), str(tmp_path / "spec.json")],
        cwd=tmp_path, env={"PATH": os.environ.get("PATH", "")}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == EXIT_BOOTSTRAP
    assert "ship sparkjobs-runtime.zip with --py-files (Livy: pyFiles)" in missing.stderr


def test_spec_problems_are_reported_together():
    bad = _spec("", "../escape.py", args="--alpha", env={"A": 1}, snapshot_archive="s.zip", extra=True)
    bad["version"] = 2
    with pytest.raises(BootstrapError) as caught:
        LaunchSpec.from_json(bad)
    message = str(caught.value)
    for fragment in ("unknown key 'extra'", "version is 2", "run_id", "script", "args", "env", "outputs_uri"):
        assert fragment in message


def test_spec_round_trip():
    spec = LaunchSpec.from_json(_spec("r", "src/train.py", args=["-v"], env={"A": "1"}))
    assert (spec.script, spec.args, spec.env, spec.outputs_uri) == ("src/train.py", ("-v",), {"A": "1"}, None)


def test_the_temp_folder_goes_where_a_killed_driver_leaves_nothing_behind(tmp_path, monkeypatch):
    # A killed driver never reaches its own clean-up: its temp folder must be somewhere removed
    # for it (the run's work folder; on YARN the container's folder, which the NodeManager deletes).
    from sparkjobs.bootstrap.launch import _work_parent

    monkeypatch.delenv("CONTAINER_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    given = LaunchSpec.from_json({**_spec("r", "train.py"), "work_dir": "/runs/work/r"})
    assert _work_parent(given) == "/runs/work/r"
    assert _work_parent(LaunchSpec.from_json(_spec("r", "train.py"))) is None  # the machine's temp folder
    monkeypatch.setenv("CONTAINER_ID", "container_1796191432495_0012_01_000001")
    assert _work_parent(LaunchSpec.from_json(_spec("r", "train.py"))) == str(tmp_path)


@pytest.mark.parametrize("code, expected", [(None, 0), (0, 0), (3, 3), (True, 1), ("fatal: no data", 1)])
def test_exit_codes_follow_sys_exit(code, expected):
    assert exit_code(code) == expected


@pytest.mark.parametrize(
    "location, expected",
    [("/tmp/spec.json", "/tmp/spec.json"), ("file:///tmp/a%20b.json", "/tmp/a b.json"),
     ("file:/tmp/spec.json", "/tmp/spec.json"), ("wasbs://c@a.blob.core.windows.net/spec.json", None)],
)  # fmt: skip
def test_local_path_of_a_location(location, expected):
    assert local_path(location) == expected


def test_child_uri_keeps_the_default_container_form():
    assert child_uri("wasbs:///runs/r/outputs/", "a/b.txt") == "wasbs:///runs/r/outputs/a/b.txt"
    assert child_uri("file:///tmp/o", "x") == "file:///tmp/o/x"


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"version": 1}, "The launch spec is invalid"),
        (_spec("r", "train.py", snapshot_archive="missing.zip", outputs_uri="file:///tmp/o/"), "ship it with --py-files"),
    ],
)
def test_bootstrap_errors_exit_2_before_running_anything(tmp_path, spec, message):
    """No URI to reach and no archive found: plain python runs the bootstrap, no JVM needed."""
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, str(BOOTSTRAP_PATH), str(spec_path)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == EXIT_BOOTSTRAP
    assert message in result.stderr


# The tee works on file descriptors 1 and 2, which pytest's own capturing replaces, so these two
# run in a child Python; its uploader stands in for the Hadoop upload the Spark runs exercise.
TEE_PROGRAM = """
import json, os, sys, time
from pathlib import Path
from sparkjobs.bootstrap import drivelog

class CopyingUploader:
    copies = []
    def upload(self, local, uri):
        self.copies.append(Path(local).read_text())

drivelog.LOG_INTERVAL_SECONDS = 0.2
drivelog.LOG_CAP_BYTES = int(sys.argv[2])
uploader = CopyingUploader()
with drivelog.driver_log("file:///ignored/driver.log", uploader, sys.argv[1]):
    print("from python stdout")
    print("from python stderr", file=sys.stderr)
    os.system("echo from a child process")
    time.sleep(0.7)
    for number in range(200):
        print(f"line {number:03d}")
Path(sys.argv[1], "copies.json").write_text(json.dumps(uploader.copies))
"""


def _tee_run(tmp_path: Path, cap: int) -> tuple[list[str], subprocess.CompletedProcess]:
    result = subprocess.run(
        [sys.executable, "-c", TEE_PROGRAM, str(tmp_path), str(cap)], capture_output=True, text=True, check=True
    )
    return json.loads((tmp_path / "copies.json").read_text()), result


def test_driver_log_tees_descriptors_and_uploads_periodically(tmp_path):
    copies, console = _tee_run(tmp_path, cap=10**6)
    assert len(copies) >= 3  # at least two periodic uploads and the final one
    assert "from python stdout" in copies[1]  # lines reach the log while the job runs
    lines = copies[-1].splitlines()
    for line in ("from python stdout", "from python stderr", "from a child process", "line 199"):
        assert line in lines  # whole lines, even though stdout and stderr interleave
    assert "from python stdout" in console.stdout and "from python stderr" in console.stderr


def test_driver_log_is_capped_but_the_console_gets_everything(tmp_path):
    copies, console = _tee_run(tmp_path, cap=1000)
    assert "line 199" not in copies[-1]
    assert copies[-1].endswith("[sparkjobs: driver log truncated here; the console has the rest]\n")
    assert "line 199" in console.stdout


SLOW_CONSOLE_PROGRAM = """
import sys
from sparkjobs.bootstrap import drivelog

class NoUpload:
    def upload(self, local, uri):
        pass

with drivelog.driver_log("file:///ignored/driver.log", NoUpload(), sys.argv[1]):
    for number in range(1500):
        print(f"line {number:04d} " + "x" * 80)
"""


def test_the_last_lines_reach_a_console_that_reads_slowly(tmp_path):
    """The job ends while its last lines are still on their way to a console that is not reading
    (spark-submit's copying thread, starved on a busy machine): stopping the tee must wait for
    them, not give up after a few seconds and let the process exit with them."""
    child = subprocess.Popen([sys.executable, "-c", SLOW_CONSOLE_PROGRAM, str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(8)  # longer than the tee waits for a pump that moves nothing
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    lines = out.decode().splitlines()
    assert child.returncode == 0 and len(lines) == 1500 and lines[-1].startswith("line 1499")
    assert (tmp_path / "driver.log").read_text().splitlines()[-1].startswith("line 1499")


SHARED_CONSOLE_PROGRAM = """
import sys, threading
from sparkjobs.bootstrap import drivelog

class NoUpload:
    def upload(self, local, uri):
        pass

def printing(stream, tag):
    for number in range(800):
        print(tag, number, tag.lower() * 40, file=stream)  # unbuffered: four writes per print

with drivelog.driver_log("file:///ignored/driver.log", NoUpload(), sys.argv[1]):
    threads = [threading.Thread(target=printing, args=(stream, tag)) for stream, tag in ((sys.stdout, "OUT"), (sys.stderr, "ERR"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
"""


def test_lines_stay_whole_on_a_console_that_stdout_and_stderr_share(tmp_path):
    """spark-submit gives the Python driver one pipe for stdout and stderr, and Python unbuffered
    writes a print's parts one by one: the tee's two pumps must not cut each other's lines there
    (a NAMES line once came out glued behind another line's first word)."""
    read_end, write_end = os.pipe()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with os.fdopen(read_end, "rb") as console:
        child = subprocess.Popen([sys.executable, "-c", SHARED_CONSOLE_PROGRAM, str(tmp_path)],
                                 stdout=write_end, stderr=write_end, env=env)
        os.close(write_end)
        try:
            out = console.read()
        finally:
            child.wait(timeout=120)
    lines = out.decode().splitlines()
    broken = [line for line in lines if not re.fullmatch(r"OUT \d+ (?:out){40}|ERR \d+ (?:err){40}", line)]
    assert child.returncode == 0 and len(lines) == 1600 and broken == [], broken[:5]


PROMPT_PROGRAM = """
import sys
from sparkjobs.bootstrap import drivelog

class NoUpload:
    def upload(self, local, uri):
        pass

with drivelog.driver_log("file:///ignored/driver.log", NoUpload(), sys.argv[1]):
    print("continue? ", end="", flush=True)  # no newline: the console must still show it
    print("answer", sys.stdin.readline().strip())
"""


def test_a_partial_line_still_reaches_the_console(tmp_path):
    """Lines are kept whole, but a prompt without a newline is not held back: the job waits for
    an answer the user gives only after seeing it (a timeout here means it was held)."""
    child = subprocess.Popen([sys.executable, "-c", PROMPT_PROGRAM, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdin is not None
        seen = b""
        while b"continue? " not in seen:  # bounded: a minute per read, and a closed pipe reads b""
            ready, _, _ = select.select([child.stdout], [], [], 60)
            assert ready, f"the prompt was held back from the console: {seen!r}"
            piece = os.read(child.stdout.fileno(), 1024)
            assert piece, f"the console closed before the prompt came: {seen!r}"
            seen += piece
        child.stdin.write(b"yes\n")
        child.stdin.close()
        rest = child.stdout.read()
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (seen + rest).decode() == "continue? answer yes\n"


LINGERING_CHILD_PROGRAM = """
import subprocess, sys
from pathlib import Path
from sparkjobs.bootstrap import drivelog

class NoUpload:
    def upload(self, local, uri):
        pass

with drivelog.driver_log("file:///ignored/driver.log", NoUpload(), sys.argv[1]):
    print("the job ran")
    daemon = subprocess.Popen(["sleep", "300"])  # holds the tee's pipes open after the job
    Path(sys.argv[1], "daemon.pid").write_text(str(daemon.pid))
"""


def test_a_child_that_outlives_the_job_does_not_hold_its_exit(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", LINGERING_CHILD_PROGRAM, str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, _ = child.communicate(timeout=200)  # the daemon sleeps 300 s: returning first is the point
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        pid = tmp_path / "daemon.pid"
        if pid.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid.read_text()), signal.SIGKILL)
    assert child.returncode == 0 and b"the job ran" in out


def test_plain_python_run_deletes_credentials_it_cannot_use(tmp_path, secret):
    """The local target runs pure-Python projects without spark-submit: no JVM is started."""
    (tmp_path / "job.py").write_text("import os, sys\nprint('ran', os.environ['USER_VAR'])\nsys.exit(4)\n")
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"hadoop": {CREDENTIAL_KEY: secret}}))
    spec_path = tmp_path / "launch.json"
    spec_path.write_text(json.dumps(_spec("r", "job.py", env={"USER_VAR": "v"}, credentials_uri=str(credentials))))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYSPARK_GATEWAY")}
    result = subprocess.run(
        [sys.executable, str(BOOTSTRAP_PATH), str(spec_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 4
    assert "ran v" in result.stdout and "not needed" in result.stderr
    assert not credentials.exists()


@pytest.mark.spark
def test_hadoop_file_operations_on_file_uris(tmp_path):
    """The reads and deletes that remote specs and credentials take (the runs above read local
    files with open()); a JVM gateway only, no SparkContext."""
    hadoop = Spark(plain_local_files=False)  # no spark-submit here, but Hadoop is under test
    source = tmp_path / "source.json"
    source.write_text('{"a": 1}')
    target = (tmp_path / "remote" / "deep" / "copy.json").as_uri()
    try:
        hadoop.upload(str(source), target)
        assert json.loads(hadoop.read_bytes(target)) == {"a": 1}
        hadoop.download(target, str(tmp_path / "back.json"))
        assert json.loads((tmp_path / "back.json").read_text()) == {"a": 1}
        assert not list(tmp_path.rglob("*.crc"))
        hadoop.delete(target)
        assert not (tmp_path / "remote" / "deep" / "copy.json").exists()
        with pytest.raises(BootstrapError, match="Cannot read the launch spec"):
            read_json(target.replace("file:", "nosuchfs:"), hadoop, "launch spec")
    finally:
        hadoop.close()


# --- snapshot mode: a content-addressed snapshot in storage (cluster targets) --------------------
# Plain Python runs the bootstrap here, so file:// locations use plain file operations; the
# cluster tests (tests/test_cluster_target.py) run the same mode under spark-submit, where the
# copies go through Hadoop's FileSystem.

MANIFEST_SCRIPT = '''
import json, os, sys
from pkg.helper import NAME
with open("outputs/seen.json", "w") as handle:
    json.dump({"name": NAME, "data": open("data/input.txt").read(), "tool_mode": oct(os.stat("bin/tool.sh").st_mode & 0o777),
               "cwd_is_snapshot": os.path.isfile("run.py")}, handle)
print("manifest job ran")
sys.exit(int(sys.argv[1]))
'''


def _stored_snapshot(tmp_path: Path) -> tuple[Path, str]:
    from sparkjobs.snapshot import build_snapshot
    from sparkjobs.snapshot_store import SnapshotStore
    from sparkjobs.storage.local import LocalStore

    project = tmp_path / "project"
    files = {"run.py": MANIFEST_SCRIPT, "pkg/__init__.py": "", "pkg/helper.py": "NAME = 'pkg'\n", "pkg/table.csv": "a,b\n",
             "data/input.txt": "forty-two", "bin/tool.sh": "#!/bin/sh\necho tool\n"}
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "bin" / "tool.sh").chmod(0o755)
    store = tmp_path / "store"
    snapshot = build_snapshot(project, cap_bytes=10**6)
    SnapshotStore(LocalStore(store)).save(snapshot)
    return store, snapshot.digest


def _manifest_spec(store: Path, digest: str, **fields) -> dict:
    run = store / "runs" / "r1"
    return _spec(
        "r1", "run.py",
        snapshot_manifest=(store / "snapshots" / digest / "manifest.json").as_uri(),
        objects_uri=(store / "objects").as_uri() + "/",
        outputs_uri=(run / "outputs").as_uri() + "/",
        log_uri=(run / "driver.log").as_uri(),
        exit_uri=(run / "exit.json").as_uri(),
        **fields,
    )  # fmt: skip


def _plain_bootstrap(tmp_path: Path, spec: dict) -> subprocess.CompletedProcess:
    spec_path = tmp_path / "launch.json"
    spec_path.write_text(json.dumps(spec))
    (tmp_path / "cwd").mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYSPARK_GATEWAY")}
    return subprocess.run(
        [sys.executable, str(BOOTSTRAP_PATH), spec_path.as_uri()], cwd=tmp_path / "cwd", env=env,
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_snapshot_manifest_mode_copies_the_snapshot_and_records_the_exit_code(tmp_path):
    store, digest = _stored_snapshot(tmp_path)
    result = _plain_bootstrap(tmp_path, _manifest_spec(store, digest, args=["5"]))
    assert result.returncode == 5, result.stderr
    run = store / "runs" / "r1"
    assert json.loads((run / "outputs" / "seen.json").read_text()) == {
        "name": "pkg", "data": "forty-two", "tool_mode": "0o755", "cwd_is_snapshot": True,
    }  # fmt: skip
    seen = (run / "outputs" / "seen.json").read_bytes()
    assert json.loads((run / "exit.json").read_text()) == {
        "run_id": "r1", "exit_code": 5, "outputs_sha256": {"seen.json": hashlib.sha256(seen).hexdigest()},
    }  # fmt: skip
    log = (run / "driver.log").read_text()
    assert "manifest job ran" in log and "copied 6 snapshot files (" in log
    assert not list((tmp_path / "cwd").iterdir())  # worked in a temp folder, left nothing behind


@pytest.mark.parametrize("bad_path", ["../escape.txt", "/etc/escape.txt", "a/./b.txt", "a//b.txt"])
def test_snapshot_manifest_with_an_unsafe_path_is_refused(tmp_path, bad_path):
    store, digest = _stored_snapshot(tmp_path)
    manifest = store / "snapshots" / digest / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"][0]["path"] = bad_path
    manifest.write_text(json.dumps(data))
    result = _plain_bootstrap(tmp_path, _manifest_spec(store, digest, args=["0"]))
    assert result.returncode == EXIT_BOOTSTRAP
    assert "unsafe path" in result.stderr and not (tmp_path / "escape.txt").exists()
    assert json.loads((store / "runs" / "r1" / "exit.json").read_text())["exit_code"] == EXIT_BOOTSTRAP


def test_snapshot_object_that_does_not_match_its_digest_stops_the_run(tmp_path):
    store, digest = _stored_snapshot(tmp_path)
    entry = next(f for f in json.loads((store / "snapshots" / digest / "manifest.json").read_text())["files"] if f["path"] == "run.py")
    (store / "objects" / entry["sha256"][:2] / entry["sha256"]).write_text("print('tampered')\n")
    result = _plain_bootstrap(tmp_path, _manifest_spec(store, digest, args=["0"]))
    assert result.returncode == EXIT_BOOTSTRAP
    assert "run.py: the stored object does not match the manifest" in result.stderr
    assert "tampered" not in result.stdout


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"snapshot_manifest": "file:///s/manifest.json", "outputs_uri": "file:///o/"}, "snapshot_manifest needs objects_uri"),
        ({"snapshot_manifest": "file:///s/manifest.json", "objects_uri": "file:///objects/"}, "snapshot_manifest needs outputs_uri"),
        ({"snapshot_manifest": "m", "snapshot_archive": "a.zip", "objects_uri": "o", "outputs_uri": "p"}, "not both"),
        ({"exit_uri": ""}, "exit_uri must be a non-empty string"),
    ],
)
def test_snapshot_manifest_spec_problems(fields, message):
    with pytest.raises(BootstrapError, match=message):
        LaunchSpec.from_json(_spec("r", "train.py", **fields))


def test_executors_get_python_files_and_package_data_but_not_other_data():
    files = [ManifestFile(path, 1, "0" * 64, False) for path in
             ("train.py", "jobs/run.py", "pkg/__init__.py", "pkg/table.csv", "pkg/sub/x.txt", "data/big.csv", "README.md")]
    assert module_paths(files) == ["jobs/run.py", "pkg/__init__.py", "pkg/table.csv", "train.py"]
