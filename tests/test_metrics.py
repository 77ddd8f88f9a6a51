"""Metrics and params a script logs (issue 10, item 1), through the real CLI.

Real Spark runs only in the ``spark_runs`` fixture: a Workbench script (``azureml.logging``,
unchanged) on ``-c local`` and through the Livy-protocol test server (real spark-submit, the
runtime zip in pyFiles, ``storage: file://``: the bootstrap copies the logged files through
Hadoop, as to wasbs://), once succeeding and once failing, started together. The rest runs the
real bootstrap under plain Python (``Framework: Python``), which is how that framework runs.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from livy_server import LivyTestServer

from helpers import cli, cli_json, make_project, signal_run_after, write
from sparkjobs import tracking
from sparkjobs.metrics import MetricPoint, parse_metrics
from sparkjobs.service import SparkJobs

WORKBENCH = """
import sys
from azureml.logging import get_azureml_logger
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
logger = get_azureml_logger()
logger.log("Regularization Rate", 0.01)
count = spark.range(10).count()
logger.log("Accuracy", count / 10.75)
logger.log("all values", [5, 6, 7])
logger.log("Cell", "Load Data")
logger.log("loss", float("nan"))
logger.log("loss", float("inf"))
# The stand-in reaches the executors too (pickled by reference: they import it themselves).
found = spark.sparkContext.parallelize([1], 1).map(lambda _: __import__("azureml.logging").logging.__name__).collect()
logger.log("executor import", found[0])
print("LOGGED-EVERYTHING", flush=True)
if sys.argv[1] == "fail":
    raise RuntimeError("the script failed after logging")
spark.stop()
"""

SERIES = """
import json, os, sys
from sparkjobs import context

for epoch in range(5):
    context.log_metric("loss", 1.0 / (epoch + 1))
context.log_metric("loss", 0.1, step=100)
context.log_metrics({"nan": float("nan"), "up": float("inf"), "down": float("-inf"), "text": "NaN"})
context.log_param("alpha", 0.5)
context.log_param("alpha", 0.5)  # the same value again is fine
context.log_param("layers", [64, 32])
context.log_param("<script>alert(1)</script>", "kept as text")
if sys.argv[1:] == ["conflict"]:
    context.log_param("alpha", 0.7)
if sys.argv[1:] == ["hostile"]:
    # Whatever a script writes to the files itself must not break the record.
    with open(os.environ["SPARKJOBS_METRICS"], "a") as handle:
        handle.write('{"name": "bare", "value": NaN, "step": 0, "time": "t"}\\n')
        handle.write('{"name": "' + "x" * 500 + '", "value": 1, "step": 0, "time": "t"}\\n')
        handle.write('{"name": "ok", "value": {"a": 1}, "step": 0, "time": "t"}\\n')
        handle.write('not json at all\\n')
        handle.write('{"name": "cut", "val')
print("DONE", flush=True)
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKJOBS_", "AZURE_STORAGE"))}
    env.update(SPARKJOBS_HOME=str(home), SPARKJOBS_LIVY_POLL_SECONDS="0.2")
    return env


def _strict(text: str):
    """JSON as strict parsers read it: a bare NaN or Infinity is an error."""
    def refuse(constant: str):
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _cluster(project: Path, server: LivyTestServer, store: Path) -> None:
    write(project / "aml_config" / "hdi.compute",
          f"type: cluster\nlivy: {server.url}\nstorage: {store.as_uri()}\n"
          "conf:\n  spark.ui.enabled: 'false'\n  spark.sql.shuffle.partitions: '1'\n")
    write(project / "aml_config" / "hdi.runconfig",
          "Target: hdi\nFramework: PySpark\nArgumentVector: ['$file']\nSparkDependenciesFile: aml_config/spark_dependencies.yml\n")


# --- real Spark -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("metrics-spark")
    server = LivyTestServer(runner="spark-submit", whitelist=[base])
    try:
        project = make_project(base / "proj", base / "share")
        write(project / "wb.py", WORKBENCH)
        _cluster(project, server, base / "store")
        env = _env(base / "home")
        commands = {
            "local": ("-c", "local", "wb.py", "ok"),
            "cluster": ("-c", "hdi", "wb.py", "ok"),
            "cluster-fail": ("-c", "hdi", "wb.py", "fail"),
        }
        started = {
            name: subprocess.Popen([sys.executable, "-m", "sparkjobs.cli", "run", "--project", str(project), "--json", *argv],
                                   env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, argv in commands.items()
        }
        runs = {}
        for name, process in started.items():
            out, err = process.communicate(timeout=280)
            assert out.strip(), f"{name}: no record (exit {process.returncode}):\n{err[-3000:]}"
            runs[name] = (process.returncode, _strict(out), err)
        yield {"base": base, "project": project, "env": env, "runs": runs}
    finally:
        server.stop()


WORKBENCH_METRICS = {
    "Regularization Rate": 0.01, "Accuracy": 10 / 10.75, "all values": 7, "Cell": "Load Data",
    "loss": "Infinity", "executor import": "azureml.logging",
}


@pytest.mark.spark
@pytest.mark.parametrize("name", ["local", "cluster"])
def test_a_workbench_script_runs_unchanged_and_its_metrics_land_in_the_record(spark_runs, name):
    code, record, err = spark_runs["runs"][name]
    assert code == 0 and record["status"] == "completed", err[-3000:]
    assert record["metrics"] == WORKBENCH_METRICS
    assert record["params"] == {}
    series = SparkJobs(spark_runs["env"]).get_metrics(spark_runs["project"], record["id"])
    assert [p.value for p in series["all values"]] == [5, 6, 7] and [p.step for p in series["all values"]] == [0, 1, 2]
    assert math.isnan(series["loss"][0].value) and series["loss"][1].value == math.inf
    # Nothing named azureml was installed where this Python finds it: it is on jobs' paths only.
    assert importlib.util.find_spec("azureml") is None


@pytest.mark.spark
def test_a_failing_cluster_script_keeps_what_it_logged(spark_runs):
    code, record, err = spark_runs["runs"]["cluster-fail"]
    assert code == 1 and record["status"] == "failed", err[-3000:]
    assert record["metrics"] == WORKBENCH_METRICS
    # The bootstrap copied the file to the cluster's storage; the finisher stored it in the run store.
    home_series = Path(spark_runs["env"]["SPARKJOBS_HOME"]) / "runs" / record["id"] / "metrics.jsonl"
    cluster_copy = spark_runs["base"] / "store" / "runs" / record["id"] / "metrics.jsonl"
    assert parse_metrics(home_series.read_bytes()) == parse_metrics(cluster_copy.read_bytes())
    assert len(parse_metrics(home_series.read_bytes())[0]["all values"]) == 3


# --- the bootstrap under plain Python (Framework: Python) --------------------------------------------


@pytest.fixture
def python_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    project = make_project(tmp_path / "proj", tmp_path / "share", framework="Python")
    write(project / "series.py", SERIES)
    return project, _env(tmp_path / "home")


def _run(project: Path, env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    return cli_json("run", "--project", str(project), "--json", "-c", "local", "series.py", *args, env=env)


def test_series_steps_nonfinite_values_and_params_are_recorded(python_project):
    project, env = python_project
    done, record = _run(project, env)
    assert done.returncode == 0, done.stderr
    assert record["metrics"] == {"loss": 0.1, "nan": "NaN", "up": "Infinity", "down": "-Infinity", "text": "NaN"}
    assert record["params"] == {"alpha": 0.5, "layers": [64, 32], "<script>alert(1)</script>": "kept as text"}
    stored = Path(env["SPARKJOBS_HOME"]) / "runs" / record["id"] / "metrics.jsonl"
    lines = [_strict(line) for line in stored.read_text().splitlines()]
    loss = [line for line in lines if line["name"] == "loss"]
    assert [(p["value"], p["step"]) for p in loss] == [(1.0, 0), (0.5, 1), (1 / 3, 2), (0.25, 3), (0.2, 4), (0.1, 100)]
    assert {line["name"]: (line["value"], line.get("nonfinite")) for line in lines if line["name"] != "loss"} == {
        "nan": ("NaN", True), "up": ("Infinity", True), "down": ("-Infinity", True), "text": ("NaN", True),
    }
    assert all(line["time"].endswith("Z") for line in lines)
    series = SparkJobs(env).get_metrics(project, record["id"])
    assert list(series) == ["loss", "nan", "up", "down", "text"]
    assert isinstance(series["loss"][0], MetricPoint) and series["down"][0].value == -math.inf


def test_logging_a_param_again_with_another_value_fails_the_script_and_keeps_the_first(python_project):
    project, env = python_project
    done, record = _run(project, env, "conflict")
    assert done.returncode == 1 and record["status"] == "failed"
    assert "ValueError: Param 'alpha' is already 0.5 in this run; a param is logged once" in done.stderr
    assert record["params"]["alpha"] == 0.5 and record["metrics"]["loss"] == 0.1


def test_lines_a_script_forges_are_left_out_and_never_break_the_record(python_project):
    project, env = python_project
    done, record = _run(project, env, "hostile")
    assert done.returncode == 0, done.stderr
    assert "sparkjobs: 5 lines of the logged metrics and params could not be used" in done.stderr
    assert set(record["metrics"]) == {"loss", "nan", "up", "down", "text"}
    shown = cli("runs", "show", "--project", str(project), "--json", record["id"], env=env)
    assert shown.returncode == 0 and set(_strict(shown.stdout)["metric_series"]) == set(record["metrics"])


def test_runs_show_prints_last_values_and_params_and_json_gives_every_point(python_project):
    project, env = python_project
    _, record = _run(project, env)
    shown = cli("runs", "show", "--project", str(project), record["id"], env=env)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "metrics:\n  down  -Infinity\n  loss  0.1\n  nan   NaN\n  text  NaN\n  up    Infinity\n" in text
    assert 'params:\n  <script>alert(1)</script>  kept as text\n  alpha                      0.5\n  layers                     [64, 32]\n' in text
    as_json = cli("runs", "show", "--project", str(project), "--json", record["id"], env=env)
    data = _strict(as_json.stdout)
    assert data["metrics"] == record["metrics"]
    assert [p["value"] for p in data["metric_series"]["loss"]] == [1.0, 0.5, 1 / 3, 0.25, 0.2, 0.1]
    assert data["metric_series"]["nan"] == [{"name": "nan", "value": "NaN", "step": 0, "time": data["metric_series"]["nan"][0]["time"], "nonfinite": True}]


def test_a_run_that_logged_nothing_has_no_series(python_project):
    project, env = python_project
    write(project / "quiet.py", "print('nothing logged')\n")
    done, record = cli_json("run", "--project", str(project), "--json", "-c", "local", "quiet.py", env=env)
    assert done.returncode == 0 and record["metrics"] == {} and record["params"] == {}
    assert not (Path(env["SPARKJOBS_HOME"]) / "runs" / record["id"] / "metrics.jsonl").exists()
    assert SparkJobs(env).get_metrics(project, record["id"]) == {}
    shown = cli("runs", "show", "--project", str(project), record["id"], env=env)
    assert "metrics:" not in shown.stdout and "params:" not in shown.stdout


# --- the API's checks, in this process ----------------------------------------------------------


@pytest.fixture
def recorder(tmp_path: Path) -> tracking.Recorder:
    return tracking.Recorder(str(tmp_path / "m.jsonl"), str(tmp_path / "p.jsonl"))


@pytest.mark.parametrize(("name", "message"), [
    ("", "must not be empty"),
    (" padded", "must not be empty or start or end with spaces"),
    ("x" * 201, "has 201 characters; the most is 200"),
    ("line\nbreak", "holds control characters"),
    ("right\u202eto left", "holds control characters"),
    (7, "must be a string, not int"),
])
def test_odd_names_are_refused_with_a_sentence(recorder, name, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")):
        recorder.log_metric(name, 1)


@pytest.mark.parametrize(("value", "message"), [
    (None, "must be a number or a string, not NoneType"),
    (True, "must be a number or a string, not bool"),
    ("x" * 5001, "is 5001 characters long; the most is 5000"),
    ([1, 2], "must be a number or a string, not list"),
])
def test_odd_values_are_refused_with_a_sentence(recorder, value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        recorder.log_metric("m", value)


def test_params_must_be_strict_json(recorder):
    with pytest.raises(ValueError, match="holds NaN or an infinity, which a param cannot; log it as a metric"):
        recorder.log_param("p", [1.0, float("inf")])
    with pytest.raises(TypeError, match="must be text, a number, true/false, None, or a list or dict of those"):
        recorder.log_param("p", object())


def test_steps_must_be_whole_numbers(recorder):
    with pytest.raises(ValueError, match="must be a whole number 0 or more, not -1"):
        recorder.log_metric("m", 1, step=-1)


def test_points_past_the_limit_are_dropped_with_one_warning(recorder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tracking, "MAX_POINTS", 3)
    for value in range(5):
        recorder.log_metric("m", value)
    assert capsys.readouterr().err.count("metric 'm' has 3 points, the most a metric keeps") == 1
    assert [p.value for p in parse_metrics((tmp_path / "m.jsonl").read_bytes())[0]["m"]] == [0, 1, 2]


def test_too_many_metric_names_are_refused(recorder, monkeypatch):
    monkeypatch.setattr(tracking, "MAX_METRICS", 2)
    recorder.log_metric("a", 1)
    recorder.log_metric("b", 1)
    with pytest.raises(ValueError, match="at most 2 different metrics; 'c' would be one more"):
        recorder.log_metric("c", 1)


def test_outside_a_run_values_are_checked_and_nothing_is_written(tmp_path, capsys):
    bare = tracking.Recorder(None, None)
    bare.log_metric("m", 1.0)
    bare.log_param("p", 1)
    with pytest.raises(ValueError, match="already 1 in this run"):
        bare.log_param("p", 2)
    assert "not in a sparkjobs run, so metrics and params are checked but not recorded" in capsys.readouterr().err


# --- stopped runs, and the Blob run store -----------------------------------------------------------

STOPPED = """
from sparkjobs import context
import time
context.log_metric("before the stop", 1)
context.log_param("kept", "yes")
print("LOGGED", flush=True)
time.sleep(120)
"""


def test_a_killed_run_keeps_what_it_logged(python_project):
    project, env = python_project
    write(project / "stopped.py", STOPPED)
    code, out = signal_run_after("LOGGED", signal.SIGINT, "run", "--project", str(project), "--json", "-c", "local",
                                 "stopped.py", env=env)
    record = _strict(out)
    assert code == 1 and record["status"] == "killed"
    assert record["metrics"] == {"before the stop": 1} and record["params"] == {"kept": "yes"}
    assert SparkJobs(env).get_metrics(project, record["id"])["before the stop"][0].value == 1


@pytest.mark.azurite
def test_the_series_is_kept_beside_the_record_in_a_blob_run_store(python_project, azurite):
    project, env = python_project
    env = dict(env, SPARKJOBS_HISTORY=f"wasbs://metrics@{azurite.account}.blob.core.windows.net/team",
               AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    done, record = _run(project, env)
    assert done.returncode == 0, done.stderr
    assert record["metrics"]["loss"] == 0.1 and record["params"]["alpha"] == 0.5
    assert not (Path(env["SPARKJOBS_HOME"]) / "runs").exists()
    series = SparkJobs(env).get_metrics(project, record["id"][-6:])
    assert [p.step for p in series["loss"]] == [0, 1, 2, 3, 4, 100] and math.isnan(series["nan"][0].value)
    shown = cli("runs", "show", "--project", str(project), "--json", record["id"], env=env)
    assert len(_strict(shown.stdout)["metric_series"]["loss"]) == 6


def test_a_secret_the_script_logs_is_masked_in_the_record_and_the_series(python_project):
    project, env = python_project
    secret = "c2VjcmV0LWtleS1mb3ItbWV0cmljcy10ZXN0Cg=="
    write(project / "leak.py", "import sys\nfrom sparkjobs import context\n"
          "context.log_param('key', sys.argv[1])\ncontext.log_metric('said', 'the key is ' + sys.argv[1])\n")
    done, record = cli_json("run", "--project", str(project), "--json", "-c", "local", "leak.py", secret,
                            env=dict(env, AZURE_STORAGE_KEY=secret))
    assert done.returncode == 0, done.stderr
    assert record["params"] == {"key": "***"} and record["metrics"] == {"said": "the key is ***"}
    run_folder = Path(env["SPARKJOBS_HOME"]) / "runs" / record["id"]
    assert secret not in (run_folder / "metrics.jsonl").read_text() + (run_folder / "run.json").read_text()


@pytest.mark.spark
def test_a_workbench_script_runs_unchanged_on_a_spark_standalone_cluster(tmp_path, spark_cluster):
    project = make_project(tmp_path / "proj", tmp_path / "share")
    write(project / "wb.py", WORKBENCH)
    write(project / "aml_config" / "spark.compute",
          f"type: spark\nmaster: {spark_cluster.master_url}\nstorage: {(tmp_path / 'store').as_uri()}\n"
          "conf:\n  spark.driver.host: 127.0.0.1\n  spark.ui.enabled: false\n  spark.executor.memory: 512m\n")
    write(project / "aml_config" / "spark.runconfig", 'Target: spark\nArgumentVector: ["$file"]\n')
    # Workers are on this machine here; on a real cluster PYSPARK_PYTHON names the workers' Python.
    env = dict(_env(tmp_path / "home"), PYSPARK_PYTHON=sys.executable)
    done, record = cli_json("run", "--project", str(project), "--json", "-c", "spark", "wb.py", "ok", env=env)
    assert done.returncode == 0 and record["status"] == "completed", done.stderr[-3000:]
    assert record["metrics"] == WORKBENCH_METRICS
    assert [p.value for p in SparkJobs(env).get_metrics(project, record["id"])["all values"]] == [5, 6, 7]
