"""A class-data archive of the test machine's Spark, so each of the suite's Spark JVMs starts cheaper.

Most of the suite's CPU goes into starting Spark JVMs (a local run of examples/iris spends about
a third of its 33 CPU seconds loading and compiling classes), and the suite is CPU-bound on a
2-core machine. A dynamic CDS archive (JDK 13+) made once from a small job, plus C1-only
compilation, cuts a local run's CPU by about 40%. It changes how fast classes load, not what
any job does.

``python3 tests/jvm_archive.py`` (called by tests/run) makes it once per pyspark and Java version
under tests/.cache/jvm/; ``jvm_options()`` gives the options for ``SPARK_SUBMIT_OPTS``, which
tests/conftest.py adds to the environment of every spark-submit the tests start (the JVM that
is the whole job in local mode and the driver in client mode). Without an archive the options
are empty and the suite runs as before. A JVM whose class path does not match the archive (the
HDInsight box's own Spark) ignores it silently: the cds logging is off.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache" / "jvm"
QUIET = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off", "-Xlog:class+path=off"]
# Test jobs run seconds on small heaps: C2's compile time never pays back, and the serial collector
# spends less CPU than G1's concurrent threads (iris: 24.8 -> 22.5 CPU-s).
SHORT_LIVED = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]

# Touches what the suite's jobs touch: SQL, a CSV read, a shuffle, Spark ML.
_TRAINING = """
import csv, os, sys, tempfile
from pyspark.sql import SparkSession
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
path = os.path.join(tempfile.mkdtemp(), "data.csv")
with open(path, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["a", "b", "label"])
    writer.writerows([[i, i % 3, i % 2] for i in range(40)])
frame = spark.read.csv(path, header=True, inferSchema=True)
frame.groupBy("b").count().collect()
features = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(frame)
LogisticRegression(maxIter=3).fit(features).transform(features).count()
spark.stop()
"""


def _spark_home() -> Path | None:
    spec = importlib.util.find_spec("pyspark")
    return Path(spec.origin).parent if spec and spec.origin else None


def _java_version() -> str:
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
    try:
        text = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return ""
    found = re.search(r'version "([^"]+)"', text)
    return found.group(1) if found else ""


def archive_path() -> Path | None:
    """Where this machine's archive is (or would be): one per pyspark and Java version."""
    home, java = _spark_home(), _java_version()
    if home is None or not java:
        return None
    try:
        version = importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return CACHE / f"spark-{version}-java-{java}.jsa"


def make_archive() -> Path | None:
    """Make the archive unless it is there; None (and the reason on stderr) when it cannot be."""
    target, home = archive_path(), _spark_home()
    if target is None or home is None:
        print("jvm_archive: no pyspark or no java; the tests run without a class-data archive", file=sys.stderr)
        return None
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    with tempfile.TemporaryDirectory() as work:
        job = Path(work) / "train.py"
        job.write_text(_TRAINING)
        env = {**os.environ, "SPARK_SUBMIT_OPTS": " ".join([f"-XX:ArchiveClassesAtExit={partial}", *QUIET])}
        done = subprocess.run([str(home / "bin" / "spark-submit"), str(job)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if done.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        print(f"jvm_archive: making the archive failed (exit {done.returncode}); the tests run without it:\n"
              f"{done.stderr[-2000:]}", file=sys.stderr)
        return None
    os.replace(partial, target)
    return target


def jvm_options() -> str:
    """The options for SPARK_SUBMIT_OPTS: the archive (if made) and C1-only compilation."""
    target = archive_path()
    if target is None or not target.exists():
        return ""
    return " ".join([f"-XX:SharedArchiveFile={target}", *QUIET, *SHORT_LIVED])


if __name__ == "__main__":
    made = make_archive()
    print(f"jvm_archive: {made}" if made else "jvm_archive: none")
