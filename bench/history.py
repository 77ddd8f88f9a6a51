"""Run history at 10,000 runs: the local index against a plain scan of the records (issue 10, item 6).

    python bench/history.py [--runs 10000] [--rounds 5] [--store local|azurite|both] [--data DIR]

Generates the runs (bench/history_data.py) into a local store (kept under --data and reused) and
into Azurite (in memory, started by this script and stopped by its pid; each run's record and
driver log), then times, each as the median of --rounds:

* ``runs list --last 50``: the service call, cold (no index: it is built) and warm;
* ``runs list --sort -accuracy``: the 50 most accurate runs, warm;
* ``runs list --status failed --target spark --script train.py``, warm;
* the same three as a plain scan: every record read from the store, filtered and sorted in Python
  (what sparkjobs did before the index; for ``--last 50`` it listed the store and read the newest
  50 records);
* for the index, the CPU time of the call too: on a busy machine its wall time is mostly waiting;
* the whole CLI command (``python -m sparkjobs.cli runs list ...``), warm, start-up included:
  its wall time and its CPU time (on a busy machine the wall time is mostly waiting);
* on Azurite, the hourly whole-store check (every run id listed).

Targets: --last 50 <= 0.3 s local and <= 1 s warm on Azurite; sorting <= 0.5 s.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from history_data import DONE_MARKER, make_records, write_runs  # noqa: E402

from sparkjobs.history import RunIndex, RunQuery, SortKey, sync_index  # noqa: E402
from sparkjobs.runs import RunRecord, RunRepository, RunStatus  # noqa: E402
from sparkjobs.service import SparkJobs  # noqa: E402

CONTAINER = "benchhistory"
QUERIES: dict[str, tuple[RunQuery, list[str]]] = {
    "list --last 50": (RunQuery(last=50, limit=50), ["--last", "50"]),
    "list --sort=-accuracy": (RunQuery(sort=SortKey.parse("-accuracy"), limit=50), ["--sort=-accuracy"]),
    "list --status failed --target spark --script train.py": (
        RunQuery(statuses=frozenset({RunStatus.FAILED}), target="spark", script="train.py", limit=50),
        ["--status", "failed", "--target", "spark", "--script", "train.py"]),
}


def timed(action: Callable[[], object], rounds: int) -> float:
    return timed_cpu(action, rounds)[0]


def timed_cpu(action: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (on a busy machine, wall is mostly waiting)."""
    walls, cpus = [], []
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def newest_by_scan(repo: RunRepository, count: int) -> list[RunRecord]:
    """``--last N`` as sparkjobs did before the index: list the store, read the newest N records."""
    records = []
    for record in repo.iter_runs():
        records.append(record)
        if len(records) >= count:
            break
    return records


def by_scan(records: list[RunRecord], query: RunQuery) -> list[RunRecord]:
    """A query answered over every record read from the store: filtered and sorted in Python."""
    chosen = [r for r in records if (not query.statuses or r.status in query.statuses)
              and (not query.target or r.target == query.target) and (not query.script or r.script == query.script)]
    if query.sort:
        name = query.sort.name
        numbers = [r for r in chosen if isinstance(r.metrics.get(name), (int, float))]
        numbers.sort(key=lambda r: r.metrics[name], reverse=query.sort.descending)
        chosen = numbers + [r for r in chosen if not isinstance(r.metrics.get(name), (int, float))]
    return chosen[: query.limit]


def cli_times(env: dict[str, str], args: list[str], rounds: int) -> tuple[float, float]:
    """The whole command's median wall time and its CPU time (user + system) per call, warm."""
    command = [sys.executable, "-m", "sparkjobs.cli", "runs", "list", "--all", *args]
    run = lambda: subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: E731
    run()  # the index is up to date before timing
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(run, rounds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / rounds


def bench(label: str, environ: dict[str, str], rounds: int) -> None:
    service = SparkJobs(environ)
    repo = RunRepository(service.history_store())
    service.index_path(repo.store).unlink(missing_ok=True)
    cold = timed(lambda: service.list_runs(None, all_projects=True, query=RunQuery(last=50, limit=50)), 1)
    print(f"\n{label}: the index built from the store (cold, no index file) in {cold:.2f} s", flush=True)
    started = time.perf_counter()
    every = list(repo.iter_runs())  # the plain scan: list the store, read every record
    scan = time.perf_counter() - started
    print(f"{label}: plain scan (list the store, read all {len(every):,} records) in {scan:.2f} s", flush=True)
    print(f"  {'operation':<56}{'index':>9}{'CPU':>8}{'scan':>10}{'scan/index':>12}{'CLI wall':>10}{'CLI CPU':>9}")
    env = dict(os.environ, **environ, PYTHONPATH=str(REPO))
    for name, (query, args) in QUERIES.items():
        indexed, indexed_cpu = timed_cpu(lambda: service.list_runs(None, all_projects=True, query=query), rounds)
        if query.last and not (query.sort or query.statuses):
            scanned = timed(lambda: newest_by_scan(repo, query.last or 0), 1 if label == "azurite" else rounds)
        else:
            scanned = scan + timed(lambda: by_scan(every, query), rounds)
        wall, cpu = cli_times(env, args, rounds)
        print(f"  {name:<56}{indexed:>8.3f}s{indexed_cpu:>7.3f}s{scanned:>9.2f}s{scanned / indexed:>11.0f}x{wall:>9.2f}s"
              f"{cpu:>8.2f}s",
              flush=True)
    if not repo.store.cheap_listing:
        index = RunIndex(service.index_path(repo.store), repo.store.location)
        whole = timed(lambda: sync_index(index, repo, full_every=0), 1)
        print(f"  the hourly whole-store check of the index (every run id listed): {whole:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", choices=["local", "azurite", "both"], default="both")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "sparkjobs-bench-history")
    options = parser.parse_args()
    records = None
    if options.store in ("local", "both"):
        home = options.data / "local-home"
        environ = {"SPARKJOBS_HOME": str(home)}
        if not (home / DONE_MARKER).exists():
            records = records or make_records(options.runs)
            started = time.perf_counter()
            write_runs(SparkJobs(environ).history_store(), records)
            print(f"local: wrote {len(records):,} runs in {time.perf_counter() - started:.0f} s")
        bench("local", environ, options.rounds)
    if options.store in ("azurite", "both"):
        from plugins.azurite import start_azurite, stop_azurite

        server = start_azurite()  # in memory: Azurite's on-disk store rewrites itself whole as it grows
        try:
            environ = {"SPARKJOBS_HOME": str(options.data / "azurite-home"),
                       "SPARKJOBS_HISTORY": f"wasbs://{CONTAINER}@{server.account}.blob.core.windows.net/team",
                       "AZURE_STORAGE_CONNECTION_STRING": server.connection_string}
            store = SparkJobs(environ).history_store()
            if not store.exists(DONE_MARKER):
                records = records or make_records(options.runs)
                started = time.perf_counter()
                write_runs(store, records, leaves=("run.json", "driver.log"))  # 20,000 puts take Azurite minutes
                print(f"azurite: wrote {len(records):,} runs in {time.perf_counter() - started:.0f} s", flush=True)
            bench("azurite", environ, options.rounds)
        finally:
            stop_azurite(server)


if __name__ == "__main__":
    main()
