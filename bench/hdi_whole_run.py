"""A whole small run on HDInsight in a box: ``sparkjobs run -c hdi`` against a raw
``spark-submit --master yarn --deploy-mode cluster`` of the same script.

    python bench/hdi_whole_run.py [--pairs 3] [--files 20]

Both sides run the same script (a SparkSession, a sum over 100,000 rows, a file in
``./outputs``) on the same real YARN (tests/plugins/hdinsight.py: hadoop-azure, Azurite over
HTTPS, the account key encrypted in core-site), in this one process run, alternating in
pairs (raw first in even pairs, sparkjobs first in odd ones) so that the machine's load,
which other engineers' tests make heavy and uneven, hits both sides alike.

- **sparkjobs**: the real CLI, default polling, through the HTTPS gateway with basic auth to
  the real Livy 0.7.1, ``storage`` on Azurite. Its project's snapshot and the bootstrap are
  in storage before timing (an untimed ``--detach`` submission, its batch deleted at once),
  so a run pays what every run of an unchanged project pays: snapshot check, launch spec and
  credentials upload, Livy's own spark-submit, polling, the driver log and the exit code
  read back, the run record.
- **raw**: the cluster's own spark-submit in ``cluster.spark_env()`` (what Livy uses), in
  yarn-cluster mode, of ``wasbs://bench@devstoreaccount1.../raw/job.py``, uploaded before
  timing; spark-submit waits for the application's end (its default, reporting every 1 s).
  It gets ``spark.yarn.maxAppAttempts=1`` as sparkjobs' batches do.

The project holds the script, the aml_config files and ``--files`` small modules (20 by
default): the bootstrap copies each snapshot file from storage through the wasb driver before
the script starts, which costs about 10 s more for 200 modules on this machine.

Each side is timed from spawning the process to its exit. Printed: each pair (for sparkjobs,
also when Livy had the batch and when it called it ended, read straight from Livy every
0.5 s), the medians,
and the median of the pair ratios (sparkjobs / raw). Target: <= 1.15. The machine's load is
printed with each pair. Each run takes 1-5 minutes on the busy 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hdi_common import CONTAINER, BenchProject, hdinsight, load, make_project, sparkjobs_run

from hdi_end_latency import LivyWatcher

from livy import BatchState, LivyClient

JOB = """
import os
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("rows", spark.range(100000).selectExpr("sum(id)").collect()[0][0])
os.makedirs("outputs", exist_ok=True)
open("outputs/result.txt", "w").write("done")
spark.stop()
"""


def raw_argv(h, uri: str) -> list[str]:
    return [str(h.cluster.spark_home / "bin" / "spark-submit"), "--master", "yarn", "--deploy-mode", "cluster",
            "--name", "raw-bench", "--conf", "spark.yarn.maxAppAttempts=1", uri]


def timed_raw(h, argv: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run(argv, env=h.cluster.spark_env(), cwd=h.workdir, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    if done.returncode != 0 or "final status: SUCCEEDED" not in done.stderr + done.stdout:
        raise SystemExit(f"raw spark-submit failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return elapsed


def timed_ours(project: BenchProject, watcher: LivyWatcher) -> tuple[float, str]:
    """The run's time, and when Livy had the batch and called it ended (from ``watcher``)."""
    argv = project.run_argv("job.py")
    argv.insert(argv.index("job.py"), "--json")
    start = time.monotonic()
    done = sparkjobs_run(project, argv, timeout=900)
    elapsed = time.monotonic() - start
    # "running": the run finished from its exit record before Livy had the final state from YARN.
    recorded = f"Livy's state in the record: {json.loads(done.stdout)['details'].get('livy_state')}"
    try:
        batch = watcher.newest_since(start)
    except ValueError:
        return elapsed, f"{recorded}; Livy's states not seen"
    created = watcher.when(batch, tuple(BatchState))
    final = watcher.when(batch, BatchState.TERMINAL)
    if created is None or final is None:
        return elapsed, f"{recorded}; Livy's states not seen"
    return elapsed, f"{recorded}; batch created at {created - start:.1f} s, ended in Livy at {final - start:.1f} s"


def warm_up(project: BenchProject, livy_url: str) -> None:
    """Store the snapshot and the bootstrap (a detached submission whose batch is deleted at once)."""
    sparkjobs_run(project, project.run_argv("job.py", detach=True))
    with LivyClient(livy_url, requested_by="bench") as livy:
        for batch in livy.list_batches().batches:
            livy.delete_batch(batch.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--files", type=int, default=20, help="small modules in the project besides the script")
    options = parser.parse_args()
    with hdinsight("sparkjobs-hdi-whole-") as h, tempfile.TemporaryDirectory(prefix="sparkjobs-hdi-whole-") as tmp:
        project = make_project(h, Path(tmp), {"job.py": JOB}, files=options.files)
        warm_up(project, h.cluster.livy_url)  # also makes the container
        h.azurite.container_client(CONTAINER).upload_blob("raw/job.py", JOB.encode(), overwrite=True)
        raw = raw_argv(h, h.storage(CONTAINER, "raw/job.py"))
        time.sleep(5.0)  # the deleted batch's spark-submit goes away
        print(f"sparkjobs run -c hdi ({options.files + 6} project files) vs raw spark-submit (yarn-cluster), "
              f"{options.pairs} pairs; {load()}", flush=True)
        raws, ours = [], []
        watcher = LivyWatcher(h.cluster.livy_url, every=0.5)  # reads Livy directly, not through the gateway
        try:
            for index in range(options.pairs):
                order = ("raw", "ours") if index % 2 == 0 else ("ours", "raw")
                for side in order:
                    if side == "raw":
                        raws.append(timed_raw(h, raw))
                    else:
                        elapsed, livy = timed_ours(project, watcher)
                        ours.append(elapsed)
                print(f"  pair {index + 1} ({' then '.join(order)}): raw {raws[-1]:.1f} s, sparkjobs {ours[-1]:.1f} s "
                      f"({livy}), ratio {ours[-1] / raws[-1]:.3f}; {load()}", flush=True)
        finally:
            watcher.stop()
    ratios = [o / r for o, r in zip(ours, raws)]
    print(f"raw spark-submit   median {statistics.median(raws):.1f} s  {['%.1f' % t for t in raws]}")
    print(f"sparkjobs run      median {statistics.median(ours):.1f} s  {['%.1f' % t for t in ours]}")
    print(f"ratio              median of pairs {statistics.median(ratios):.3f}  (target <= 1.15)  "
          f"per pair {['%.3f' % r for r in ratios]}")


if __name__ == "__main__":
    main()
