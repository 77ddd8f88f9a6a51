"""Overhead of `sparkjobs run -c local` against a raw spark-submit of the same script.

Both sides run in this one process run, alternating, so machine noise hits both alike.
Raw spark-submit gets the same Spark conf and log4j file sparkjobs passes, so the ratio measures
sparkjobs itself (snapshot, record, bootstrap, output collection), not a logging difference.

    python bench/overhead.py [--rounds 9]

Target: median ratio <= 1.05. Also times the snapshot of a synthetic 2,000-file, 20 MB project.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sparkjobs.config import load_run_settings  # noqa: E402
from sparkjobs.run_flow import merged_spark_conf  # noqa: E402
from sparkjobs.snapshot import build_snapshot  # noqa: E402
from sparkjobs.spark_env import spark_submit_path  # noqa: E402
from sparkjobs.targets.local import with_quiet_driver_log  # noqa: E402

SCRIPT = """
import os
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("rows", spark.range(100000).selectExpr("sum(id)").collect()[0][0])
os.makedirs("outputs", exist_ok=True)
open("outputs/result.txt", "w").write("done")
spark.stop()
"""


def make_project(root: Path) -> None:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text(f"type: local\nmaster: local[*]\nnativeSharedDirectory: {root.parent}/share/\n")
    (root / "aml_config" / "local.runconfig").write_text('Target: local\nFramework: PySpark\nArgumentVector: ["$file"]\n')
    (root / "job.py").write_text(SCRIPT)
    for i in range(20):  # a small, realistic project: some modules and a little data
        (root / f"module_{i}.py").write_text(f"VALUE = {i}\n" * 50)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(argv)}")
    return elapsed


def bench_overhead(rounds: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="sparkjobs-bench-"))
    try:
        project = base / "proj"
        make_project(project)
        env = dict(os.environ, SPARKJOBS_HOME=str(base / "home"), PYSPARK_PYTHON=sys.executable)
        settings = load_run_settings(project, "local", env)
        conf = with_quiet_driver_log(merged_spark_conf(settings))
        raw = [str(spark_submit_path(env)), "--master", "local[*]"]
        for key, value in conf.items():
            raw += ["--conf", f"{key}={value}"]
        raw += ["job.py"]
        ours = [sys.executable, "-m", "sparkjobs.cli", "run", "-c", "local", "--project", str(project), "job.py"]
        timed(ours, project, env)  # warm-up: first snapshot store, Java check cache, JIT of disk caches
        timed(raw, project, env)
        raw_times, our_times = [], []
        for i in range(rounds):
            pair = [("raw", raw), ("ours", ours)] if i % 2 == 0 else [("ours", ours), ("raw", raw)]
            for name, argv in pair:
                (raw_times if name == "raw" else our_times).append(timed(argv, project, env))
            shutil.rmtree(project / "outputs", ignore_errors=True)  # raw spark-submit writes into the project
        ratios = [o / r for o, r in zip(our_times, raw_times)]
        print(f"raw spark-submit   median {statistics.median(raw_times):.2f} s  {['%.2f' % t for t in raw_times]}")
        print(f"sparkjobs run      median {statistics.median(our_times):.2f} s  {['%.2f' % t for t in our_times]}")
        print(f"overhead ratio     median {statistics.median(ratios):.3f}  (target <= 1.05)  per round {['%.3f' % r for r in ratios]}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def bench_snapshot() -> None:
    base = Path(tempfile.mkdtemp(prefix="sparkjobs-snap-"))
    try:
        root = base / "proj"
        payload = os.urandom(10_000)
        for i in range(2000):  # 2,000 files of 10 kB = 20 MB
            folder = root / f"pkg{i % 40}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"file{i}.py").write_bytes(payload[: 9_990] + i.to_bytes(10, "big"))
        cache = base / "cache.json"
        start = time.perf_counter()
        cold = build_snapshot(root, cap_bytes=None, cache_file=cache)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = build_snapshot(root, cap_bytes=None, cache_file=cache)
        warm_s = time.perf_counter() - start
        assert cold.digest == warm.digest
        print(f"snapshot 2,000 files / {cold.total_size / 1e6:.0f} MB: cold {cold_s:.3f} s, cached {warm_s:.3f} s")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--snapshot-only", action="store_true")
    options = parser.parse_args()
    bench_snapshot()
    if not options.snapshot_only:
        bench_overhead(options.rounds)
