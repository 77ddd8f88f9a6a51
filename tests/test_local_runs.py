"""End to end on real local Spark through the real CLI: a handful of spark-submit runs, shared
between many assertions because each costs ~10 s on a 2-core machine."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from helpers import cli, cli_json, make_project, signal_run_after, write

pytestmark = pytest.mark.spark

JOB = """
import json, os, sys
from pyspark.sql import SparkSession
from sparkjobs import context

spark = SparkSession.builder.getOrCreate()
count = spark.range(10).count()
share = os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"]
previous = open(share + "counter.txt").read() if os.path.exists(share + "counter.txt") else "0"
with open(share + "counter.txt", "w") as f:
    f.write(str(int(previous) + 1))
os.makedirs("outputs/sub", exist_ok=True)
with open("outputs/metrics.json", "w") as f:
    json.dump({"count": count, "args": sys.argv[1:], "previous": previous}, f)
with open(os.path.join(context.outputs_path(), "sub", "model.pkl"), "wb") as f:
    f.write(b"\\x00model")
with open("scratch.txt", "w") as f:
    f.write("written outside outputs")
print("ENV", json.dumps({k: v for k, v in os.environ.items() if k.startswith(("SPARKJOBS_", "AZUREML_", "GREETING"))}))
print("CWD", os.getcwd())
spark.stop()
"""

FAILING = """
import os, sys
os.makedirs("outputs", exist_ok=True)
open("outputs/partial.txt", "w").write("half done")
print("about to fail")
sys.exit(3)
"""

SLOW = """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("STARTED", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("local-runs")
    environ = dict(os.environ)
    environ["SPARKJOBS_HOME"] = str(base / "home")
    for name in ("SPARKJOBS_HISTORY", "AZURE_STORAGE_CONNECTION_STRING"):
        environ.pop(name, None)
    project = make_project(base / "proj", base / "share")
    write(project / "job.py", JOB)
    write(project / "fail.py", FAILING)
    write(project / "slow.py", SLOW)
    return {"env": environ, "project": project, "base": base, "home": base / "home", "share": base / "share"}


@pytest.fixture(scope="module")
def two_runs(env):
    runs = []
    for alpha in ("0.5", "0.7"):
        done, record = cli_json("run", "-c", "local", "--json", "--project", str(env["project"]), "job.py", "--alpha", alpha, env=env["env"])
        assert done.returncode == 0, done.stderr
        runs.append((done, record))
    return runs


def test_success_is_recorded_with_artifacts(two_runs, env):
    done, record = two_runs[0]
    assert record["status"] == "completed" and record["exit_code"] == 0
    assert record["script"] == "job.py" and record["args"] == ["--alpha", "0.5"]
    assert record["project"] == "demo" and record["target"] == "local"
    assert len(record["snapshot"]) == 64
    by_path = {a["path"]: a for a in record["artifacts"]}
    assert set(by_path) == {"outputs/metrics.json", "outputs/sub/model.pkl"}
    stored = env["home"] / "runs" / record["id"] / "outputs" / "metrics.json"
    assert json.loads(stored.read_text())["count"] == 10
    assert by_path["outputs/sub/model.pkl"]["size"] == 6
    run_json = json.loads((env["home"] / "runs" / record["id"] / "run.json").read_text())
    assert run_json["status"] == "completed"
    assert not (env["home"] / "work" / record["id"]).exists()  # scratch copy cleaned up


def test_job_sees_its_environment_and_runs_in_the_snapshot(two_runs, env):
    done, record = two_runs[0]
    line = next(l for l in done.stderr.splitlines() if l.startswith("ENV "))
    seen = json.loads(line[4:])
    shared = f"{env['share']}/ws/demo/"
    assert seen["SPARKJOBS_RUN_ID"] == record["id"]
    assert seen["AZUREML_NATIVE_SHARE_DIRECTORY"] == shared and seen["SPARKJOBS_SHARED"] == shared
    assert seen["SPARKJOBS_OUTPUTS"].endswith("/outputs/") and seen["GREETING"] == "hello"
    cwd = next(l for l in done.stderr.splitlines() if l.startswith("CWD "))[4:]
    assert Path(cwd) != env["project"] and "work" in cwd


def test_files_written_outside_outputs_never_reach_the_project(two_runs, env):
    assert not (env["project"] / "scratch.txt").exists()
    assert not (env["project"] / "outputs").exists()


def test_second_run_reads_what_the_first_left_in_the_shared_folder(two_runs, env):
    metrics = [json.loads((env["home"] / "runs" / r["id"] / "outputs" / "metrics.json").read_text()) for _, r in two_runs]
    assert [m["previous"] for m in metrics] == ["0", "1"]
    assert (env["share"] / "ws" / "demo" / "counter.txt").read_text() == "2"


def test_unchanged_project_is_stored_once(two_runs, env):
    assert two_runs[0][1]["snapshot"] == two_runs[1][1]["snapshot"]
    snapshots = list((env["home"] / "snapshots").iterdir())
    assert len(snapshots) == 1 and (snapshots[0] / "COMPLETE").exists()


def test_runs_list_and_show(two_runs, env):
    done, listed = cli_json("runs", "list", "--json", "--project", str(env["project"]), env=env["env"])
    ids = [r["id"] for r in listed]
    assert ids[:2] == [two_runs[1][1]["id"], two_runs[0][1]["id"]]  # newest first
    table = cli("runs", "list", "--project", str(env["project"]), env=env["env"]).stdout
    assert two_runs[0][1]["id"] in table and "completed" in table
    shown = cli("runs", "show", two_runs[0][1]["id"], "--log", "--project", str(env["project"]), env=env["env"])
    assert shown.returncode == 0 and "outputs/metrics.json" in shown.stdout and "ENV " in shown.stdout


def test_artifact_download_and_traversal_refused(two_runs, env, tmp_path):
    run_id = two_runs[0][1]["id"]
    done = cli("artifacts", "download", run_id, "outputs/sub/model.pkl", "-o", str(tmp_path / "here"), "--project", str(env["project"]), env=env["env"])
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "here" / "model.pkl").read_bytes() == b"\x00model"
    done = cli("artifacts", "download", run_id, "-o", str(tmp_path / "all"), "--project", str(env["project"]), env=env["env"])
    assert (tmp_path / "all" / "sub" / "model.pkl").exists() and (tmp_path / "all" / "metrics.json").exists()
    done = cli("artifacts", "download", run_id, "outputs/../../run.json", "-o", str(tmp_path / "x"), "--project", str(env["project"]), env=env["env"])
    assert done.returncode == 2 and done.stderr.startswith("Error:")


def test_download_refuses_a_tampered_record_that_would_escape(two_runs, env, tmp_path):
    # A record whose artifact path climbs out (a hostile or corrupt store) must not write outside -o.
    run_id = two_runs[1][1]["id"]
    record_path = env["home"] / "runs" / run_id / "run.json"
    data = json.loads(record_path.read_text())
    data["artifacts"].append({"path": "outputs/../../../../escaped.txt", "size": 1, "sha256": "0" * 64})
    record_path.write_text(json.dumps(data))
    done = cli("artifacts", "download", run_id, "outputs", "-o", str(tmp_path / "dest"), "--project", str(env["project"]), env=env["env"])
    assert done.returncode == 2 and "Error:" in done.stderr
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_failing_job_exits_1_and_keeps_its_outputs(env):
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(env["project"]), "fail.py", env=env["env"])
    assert done.returncode == 1
    assert record["status"] == "failed" and record["exit_code"] == 3
    assert [a["path"] for a in record["artifacts"]] == ["outputs/partial.txt"]
    log = (env["home"] / "runs" / record["id"] / "driver.log").read_text()
    assert "about to fail" in log


def test_ctrl_c_kills_the_job_and_records_killed(env):
    code, out = signal_run_after(
        "STARTED", signal.SIGINT, "run", "-c", "local", "--json", "--project", str(env["project"]), "slow.py", env=env["env"]
    )
    record = json.loads(out)
    assert code == 1
    assert record["status"] == "killed"
    # the job's process group is gone: no spark-submit of this run is left behind
    leftover = subprocess.run(["pgrep", "-f", record["id"]], capture_output=True, text=True).stdout.strip()
    assert leftover == ""


CHATTY = "for i in range(100000):\n    print('line', i)\n"


def test_every_line_reaches_the_log_even_when_the_console_reads_slowly(env):
    """spark-submit copies the Python driver's output on a daemon thread, and the JVM exits as
    soon as Python has: what that thread still held was lost whenever the console read slower
    than the job wrote (seen under load; a slow reader makes it happen every time)."""
    import sys
    import time

    write(env["project"] / "chatty.py", CHATTY)
    process = subprocess.Popen([sys.executable, "-m", "sparkjobs.cli", "run", "-c", "local", "--project",
                                str(env["project"]), "chatty.py"], env=env["env"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    printed, deadline = [], time.monotonic() + 300
    try:
        while time.monotonic() < deadline and (chunk := process.stdout.read1(16384)):
            printed.append(chunk)
            time.sleep(0.05)  # a console slower than the job
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    lines = b"".join(printed).decode().splitlines()
    assert [line for line in lines if line.startswith("line ")][-1] == "line 99999"
    run_id = cli_json("runs", "list", "--json", "--project", str(env["project"]), env=env["env"])[1][0]["id"]
    log = (env["home"] / "runs" / run_id / "driver.log").read_text().splitlines()
    assert log.count("line 99999") == 1 and len([line for line in log if line.startswith("line ")]) == 100000
