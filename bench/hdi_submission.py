"""Submission time on HDInsight in a box: from ``sparkjobs run -c hdi`` starting to Livy's 201.

    python bench/hdi_submission.py [--runs 7]

Against the REAL Apache Livy 0.7.1 of tests/plugins/hdinsight.py (yarn-cluster mode on a real
YARN), reached through the HTTPS gateway with basic auth, with ``storage`` on Azurite over HTTPS
(``wasbs://bench@devstoreaccount1...``, the user's credentials file holding the keys). The
project is unchanged between runs (206 files; its snapshot and the bootstrap are already in
storage from a first, untimed run), so what is measured is what a user waits for on every run:

- **start**: ``time.monotonic()`` in this process just before it spawns the CLI
  (``python -m sparkjobs.cli run --detach ...``), so Python's start-up and sparkjobs' imports count;
- **201**: the moment the gateway has Livy's ``201 Created`` in hand, before it writes it back
  (bench/hdi_common.py's GatewayClock, read with the same monotonic clock: the gateway runs on
  a thread of this process). The client reads it a TLS write later.

Target: median <= 0.5 s. Also printed: the part spent before the POST reached the gateway
(sparkjobs itself: imports, config, credentials, snapshot check, the storage writes of the
launch spec and credentials) and the part Livy took to answer; and the CLI's CPU time (user +
system, from /proc) when the 201 was in hand, which the machine's load does not inflate: on
an idle machine the wall time would be about that plus a few local round trips. The CLI's
bytecode is cached as an installed package's is (bench/hdi_common.py). Each batch is deleted on Livy
right after (DELETE, straight to Livy; Livy 0.7.1 first waits for spark-submit to have put the
application on YARN, then kills it, about a minute per run here); ``--detach`` makes the CLI
return once the batch is created. The machine's load is printed with the figures. ``--profile``
adds one submission under cProfile (timed by CPU) and prints its top.
"""
from __future__ import annotations

import argparse
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hdi_common import REPO, BenchProject, GatewayClock, hdinsight, load, make_project

from livy import LivyClient, LivyError

JOB = "import time\ntime.sleep(1)\n"
PROFILED = """
import cProfile, runpy, sys, time
profile = cProfile.Profile(time.process_time)
profile.enable()
try:
    runpy.run_module("sparkjobs.cli", run_name="__main__", alter_sys=True)
finally:
    profile.disable()
    profile.dump_stats({out!r})
"""


@dataclass(frozen=True)
class Submission:
    to_201: float  # seconds from spawning the CLI to Livy's 201 at the gateway
    to_post: float  # ... to the POST reaching the gateway
    to_exit: float  # ... to the CLI's exit (--detach)
    cpu: float  # the CLI's user + system CPU seconds, start to exit
    cpu_to_201: float  # ... when Livy's 201 was in the gateway's hands (the CLI waits on it meanwhile)
    bare: float  # a bare `python3 -c pass` just before: what the machine's load alone costs


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_python() -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.monotonic() - start


def submit_once(project: BenchProject, clock: GatewayClock, profile: Path | None = None) -> Submission:
    argv = project.run_argv("job.py", detach=True)
    if profile is not None:  # the same CLI, under cProfile timed by CPU (wall time is the machine's load)
        argv[1:3] = ["-c", PROFILED.format(out=str(profile))]
    bare = bare_python()
    cpu = cpu_of_children()
    start = time.monotonic()
    process = subprocess.Popen(argv, env=project.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, stdin=subprocess.DEVNULL)
    clock.watched_pid = process.pid
    stdout, stderr = process.communicate(timeout=300)
    exited = time.monotonic()
    clock.watched_pid = None
    cpu = cpu_of_children() - cpu
    done = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    if done.returncode != 0:
        raise SystemExit(f"the submission failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    posts = clock.posts_after(start)
    if len(posts) != 1:
        raise SystemExit(f"expected one POST answered 201 through the gateway, saw {len(posts)}")
    answered, seen = posts[0]
    return Submission(answered - start, seen.at - start, exited - start, cpu, clock.cpu_at_post[-1], bare)


def delete_all(livy: LivyClient) -> None:
    """Delete every batch of this Livy (the benchmark's own), straight to Livy."""
    for batch in livy.list_batches().batches:
        try:
            livy.delete_batch(batch.id)
        except LivyError:
            pass  # gone already


def show_profile(path: Path, top: int = 25) -> None:
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="one more submission under cProfile; print its top")
    options = parser.parse_args()
    runs: list[Submission] = []
    with hdinsight("sparkjobs-hdi-submit-") as h, tempfile.TemporaryDirectory(prefix="sparkjobs-hdi-submit-") as tmp:
        clock = GatewayClock(h.gateway)
        project = make_project(h, Path(tmp), {"job.py": JOB})
        livy = LivyClient(h.cluster.livy_url, requested_by="bench")
        first = submit_once(project, clock)  # uploads the snapshot and the bootstrap
        delete_all(livy)
        print(f"first submission (uploads the snapshot, 206 files, and the bootstrap): {first.to_201:.2f} s to the 201; "
              f"{load()}", flush=True)
        for index in range(options.runs):
            time.sleep(3.0)  # let Livy's killed spark-submit go, so runs do not overlap
            run = submit_once(project, clock)
            delete_all(livy)
            runs.append(run)
            print(f"  run {index + 1}: 201 at {run.to_201:.3f} s (POST at the gateway at {run.to_post:.3f} s, Livy "
                  f"answered in {run.to_201 - run.to_post:.3f} s); CPU {run.cpu_to_201:.2f} s by then; CLI exited at "
                  f"{run.to_exit:.3f} s, {run.cpu:.2f} s CPU in all; bare python3 start {run.bare:.3f} s; {load()}", flush=True)
        if options.profile:
            time.sleep(3.0)
            profile = Path(tmp) / "submit.prof"
            submit_once(project, clock, profile)
            delete_all(livy)
            show_profile(profile)
        livy.close()
    med = statistics.median
    totals = [r.to_201 for r in runs]
    print(f"submission, unchanged project, CLI start to Livy's 201 through the gateway: median {med(totals):.3f} s, "
          f"min {min(totals):.3f}, max {max(totals):.3f} (target: median <= 0.5 s)")
    print(f"  sparkjobs before the POST: median {med(r.to_post for r in runs):.3f} s; Livy's answer: median "
          f"{med(r.to_201 - r.to_post for r in runs):.3f} s; CLI exit (--detach): median {med(r.to_exit for r in runs):.3f} s")
    print(f"  CLI CPU time (user + system) to the 201: median {med(r.cpu_to_201 for r in runs):.2f} s (what the "
          f"wall time would be on an idle machine, give or take the network); to its exit: median "
          f"{med(r.cpu for r in runs):.2f} s; a bare python3 "
          f"start meanwhile: median {med(r.bare for r in runs):.3f} s")


if __name__ == "__main__":
    main()
