"""What a user reads when a job runs and when it fails (issue 8, item 3): the job's own output and
nothing else, and a failing script's error once, from the script's first frame.

Real runs through the real CLI, started together in module fixtures (each spark-submit costs
seconds of JVM start-up): two PySpark jobs on local Spark, and two plain-Python jobs. The job's
output reaches the user on stdout (sparkjobs' own lines are on stderr), so the assertions compare
stdout with the exact text expected, the snapshot folder written as ``<snapshot>``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import make_project, write
from sparkjobs.bootstrap.tracebacks import TASK_MARKER, format_user_traceback

# Fits a small Spark ML model (which loads the BLAS that printed "netlib-blas: ... dlopen" on a
# machine without a native one), then fails in the script itself.
FIT_THEN_RAISE = """
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.linalg import Vectors
from pyspark.sql import SparkSession

def check(alpha):
    if alpha > 1:
        raise ValueError(f"alpha must be at most 1, not {alpha}")

spark = SparkSession.builder.getOrCreate()
rows = [(0.0, Vectors.dense(0.0, 1.0)), (1.0, Vectors.dense(1.0, 0.0)), (2.0, Vectors.dense(1.0, 1.0))] * 4
LogisticRegression(family="multinomial", maxIter=5).fit(spark.createDataFrame(rows, ["label", "features"]))
print("fitted")
check(2)
"""

# A failing write (caught: its executor, scheduler and writer log lines must stay quiet too),
# then a failing rdd.map that ends the script.
TASK_ERROR = """
from pyspark.sql import SparkSession

def parse(value):
    raise ValueError(f"cannot parse {value!r}")

spark = SparkSession.builder.getOrCreate()
rows = spark.sparkContext.parallelize(["1.5", "x"], 1)
try:
    spark.createDataFrame(rows.map(lambda value: (parse(value),)), "value double").write.parquet("outputs/values")
except Exception:
    print("the write failed, as it should")
rows.map(parse).collect()
"""

RAISES = """
def main():
    raise ValueError("bad alpha")

main()
"""

SYNTAX_ERROR = "x = 1\ny = = 2\n"


@dataclass(frozen=True)
class Run:
    done: subprocess.CompletedProcess
    snapshot: Path  # the folder the job ran in: the run's copy of the project

    @property
    def stdout(self) -> str:
        return self.done.stdout.replace(str(self.snapshot), "<snapshot>")


def _start(base: Path, name: str, framework: str, files: dict[str, str], script: str) -> tuple[subprocess.Popen, Path]:
    project = make_project(base / name / "project", base / name / "share", framework=framework)
    for path, text in files.items():
        write(project / path, text)
    home = base / name / "home"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPARKJOBS_", "AZURE_STORAGE"))}
    env["SPARKJOBS_HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "sparkjobs.cli", "run", "--project", str(project), "-c", "local", script],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return process, home


def _finish(started: dict[str, tuple[subprocess.Popen, Path]]) -> dict[str, Run]:
    results = {}
    for name, (process, home) in started.items():
        try:
            out, err = process.communicate(timeout=280)
        finally:
            if process.poll() is None:
                process.kill()
        (run_id,) = [path.name for path in (home / "runs").iterdir()]
        done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        results[name] = Run(done, home / "work" / run_id / "snapshot")
    return results


@pytest.fixture(scope="module")
def spark_runs(tmp_path_factory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("output-noise-spark")
    return _finish({
        "fit_then_raise": _start(base, "fit_then_raise", "PySpark", {"fit_then_raise.py": FIT_THEN_RAISE}, "fit_then_raise.py"),
        "task_error": _start(base, "task_error", "PySpark", {"task_error.py": TASK_ERROR}, "task_error.py"),
    })  # fmt: skip


@pytest.fixture(scope="module")
def python_runs(tmp_path_factory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("output-noise-python")
    return _finish({
        "raises": _start(base, "raises", "Python", {"raises.py": RAISES}, "raises.py"),
        "syntax": _start(base, "syntax", "Python", {"syntax.py": SYNTAX_ERROR}, "syntax.py"),
    })  # fmt: skip


def _lines(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _only_sparkjobs_lines(stderr: str) -> list[str]:
    """stderr lines that are not sparkjobs' own: the JVM's, log4j's, anything else's."""
    return [line for line in stderr.splitlines() if not line.startswith("sparkjobs: ")]


@pytest.mark.spark
def test_a_spark_run_prints_the_scripts_lines_only_and_its_error_once(spark_runs):
    run = spark_runs["fit_then_raise"]
    assert run.done.returncode == 1, run.done.stderr
    assert run.stdout == _lines(
        """
        fitted
        Traceback (most recent call last):
          File "<snapshot>/fit_then_raise.py", line 13, in <module>
            check(2)
          File "<snapshot>/fit_then_raise.py", line 7, in check
            raise ValueError(f"alpha must be at most 1, not {alpha}")
        ValueError: alpha must be at most 1, not 2
        """
    )  # no "WARNING: Using incubator modules", no "netlib-blas: ... dlopen", no log4j line
    assert _only_sparkjobs_lines(run.done.stderr) == []


@pytest.mark.spark
def test_an_error_in_a_spark_task_is_the_tasks_python_traceback_once(spark_runs):
    run = spark_runs["task_error"]
    assert run.done.returncode == 1, run.done.stderr
    assert run.stdout == _lines(
        f"""
        the write failed, as it should
        Traceback (most recent call last):
          File "<snapshot>/task_error.py", line 12, in <module>
            rows.map(parse).collect()
        {TASK_MARKER}
          File "<snapshot>/task_error.py", line 4, in parse
            raise ValueError(f"cannot parse {{value!r}}")
        ValueError: cannot parse '1.5'
        """
    )  # no Java stack, no "ERROR Executor", "WARN TaskSetManager", "ERROR FileFormatWriter" lines
    assert _only_sparkjobs_lines(run.done.stderr) == []


def test_a_plain_python_error_shows_the_scripts_frames_only(python_runs):
    run = python_runs["raises"]
    assert run.done.returncode == 1, run.done.stderr
    assert run.stdout == _lines(
        """
        Traceback (most recent call last):
          File "<snapshot>/raises.py", line 4, in <module>
            main()
          File "<snapshot>/raises.py", line 2, in main
            raise ValueError("bad alpha")
        ValueError: bad alpha
        """
    )


def test_a_syntax_error_prints_as_python_prints_it(python_runs):
    run = python_runs["syntax"]
    assert run.done.returncode == 1, run.done.stderr
    path = str(run.snapshot / "syntax.py")
    try:
        compile(SYNTAX_ERROR, path, "exec")
    except SyntaxError as exc:
        expected = "".join(traceback.format_exception_only(type(exc), exc))  # what `python syntax.py` prints
    assert run.done.stdout == expected  # not runpy's or the bootstrap's frames


# Spark 3 (HDInsight's) gives an error in an RDD task to the driver as py4j's Py4JJavaError, whose
# text is the Java exception with the worker's traceback inside; that Spark cannot run here, so
# this stands in for it with the same class name, module and text shape.
PY4J_TEXT = """An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 0.0 failed 1 times, most recent failure: Lost task 0.0 in stage 0.0 (TID 0) (10.0.0.4 executor driver): org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File "/usr/hdp/current/spark3-client/python/lib/pyspark.zip/pyspark/worker.py", line 830, in main
    process()
  File "/usr/hdp/current/spark3-client/python/lib/pyspark.zip/pyspark/util.py", line 74, in wrapper
    return f(*args, **kwargs)
  File "/mnt/job/helpers.py", line 9, in parse
    return float(value)
ValueError: could not convert string to float: 'x'

\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:559)
\tat org.apache.spark.api.python.PythonRunner$$anon$3.read(PythonRunner.scala:765)

Driver stacktrace:
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2672)
Caused by: org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File "/usr/hdp/current/spark3-client/python/lib/pyspark.zip/pyspark/worker.py", line 830, in main
    process()
ValueError: could not convert string to float: 'x'
"""


def test_a_py4j_error_from_an_older_spark_gives_the_tasks_traceback_once(tmp_path):
    error = type("Py4JJavaError", (Exception,), {"__module__": "py4j.protocol"})
    gateway = {"__name__": "py4j.java_gateway", "error": error}
    exec(compile("def call():\n    raise error(TEXT)\n", "/lib/py4j/java_gateway.py", "exec"), gateway)
    gateway["TEXT"] = PY4J_TEXT
    script = write(tmp_path / "job.py", "def main(call):\n    call()\n")
    code = compile(script.read_text(), str(script), "exec")
    job: dict = {"__name__": "__main__"}
    exec(code, job)
    try:
        job["main"](gateway["call"])
    except Exception as exc:  # noqa: BLE001 - the stand-in error is the subject
        text = format_user_traceback(exc, str(script))
    assert text == _lines(
        f"""
        Traceback (most recent call last):
          File "{script}", line 2, in main
            call()
        {TASK_MARKER}
          File "/mnt/job/helpers.py", line 9, in parse
            return float(value)
        ValueError: could not convert string to float: 'x'
        """
    )
