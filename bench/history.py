"""Run history at 10,000 runs: the local index against a plain scan of the records (issue 10, item 6).

    python bench/history.py [--runs 10000] [--rounds 5] [--store local|azurite|both] [--data DIR] [--azurite-port N]

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
* the runs page: an HTTP GET of the real ``sparkjobs ui`` server (newest 50, and sorted by a metric), warm;
* on Azurite, the hourly whole-store check (every run id listed);
* Python's start-up and the imports ``runs list`` needs, alone (the floor under the CLI's figures).

The CLI runs in this checkout, which is a project (its ``aml_config/`` is read, as a user's list
in their project reads theirs). ``--cli-python`` times it with another interpreter, such as a
virtual environment's with sparkjobs installed as users install it (``pip install .``): an
editable install's import hook, and whatever ``.pth`` files this interpreter's site-packages
holds, add start-up time a user's installation does not have.

The index and the scan are timed in turn, round by round, so the machine's load (shared and noisy)
falls on both alike; each line prints the ratio and the load average it was taken at.

Targets: --last 50 <= 0.3 s local and <= 1 s warm on Azurite; sorting <= 0.5 s.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from history_data import DONE_MARKER, make_records, write_runs  # noqa: E402
from ui_runs import UiProcess  # noqa: E402

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

PAGES = {"runs page (GET /, 50 newest)": "/", "runs page sorted (GET /?sort_desc=metric:accuracy)": "/?sort_desc=metric:accuracy"}


def load() -> str:
    """The machine's load average (1 and 5 minutes, as ``uptime`` shows it): the figures beside it
    are only as quiet as this."""
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def once(action: Callable[[], object]) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - started, time.process_time() - cpu


def timed(action: Callable[[], object], rounds: int) -> float:
    return timed_cpu(action, rounds)[0]


def timed_cpu(action: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (on a busy machine, wall is mostly waiting)."""
    walls, cpus = zip(*(once(action) for _ in range(rounds)))
    return statistics.median(walls), statistics.median(cpus)


def interleaved(indexed: Callable[[], object], scanned: Callable[[], object], rounds: int, scan_rounds: int
                ) -> tuple[float, float, float, float]:
    """Both sides taken in turn, so that the machine's load falls on both alike: the index's median
    wall and CPU, the scan's median wall, and the median of the rounds' scan/index ratios."""
    walls, cpus, scans, ratios = [], [], [], []
    for n in range(rounds):
        wall, cpu = once(indexed)
        walls.append(wall)
        cpus.append(cpu)
        if n < scan_rounds:
            scans.append(once(scanned)[0])
            ratios.append(scans[-1] / wall)
    return statistics.median(walls), statistics.median(cpus), statistics.median(scans), statistics.median(ratios)


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


CLI_PYTHON = sys.executable  # --cli-python


def child_env(environ: dict[str, str]) -> dict[str, str]:
    """The environment of the commands timed: this checkout's sparkjobs, with its bytecode cached
    (outside the tree) as an installed sparkjobs has it. Without the cache every start compiles
    each module again, where PYTHONDONTWRITEBYTECODE is set: about 0.08 s of CPU here."""
    env = dict(os.environ, **environ, PYTHONPATH=str(REPO),
               PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "sparkjobs-bench-pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cli_times(env: dict[str, str], args: list[str], rounds: int) -> tuple[float, float]:
    """The whole command's median wall time and its CPU time (user + system) per call, warm."""
    return child_times([CLI_PYTHON, "-m", "sparkjobs.cli", "runs", "list", "--all", *args], env, rounds)


def child_times(command: list[str], env: dict[str, str], rounds: int) -> tuple[float, float]:
    run = lambda: subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # noqa: E731
                                 cwd=REPO)
    run()  # the index is up to date (and the files in the page cache) before timing
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(run, rounds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / rounds


def bench(label: str, environ: dict[str, str], rounds: int, pages_only: bool = False, skip_scan: bool = False,
          keep_index: bool = False) -> None:
    service = SparkJobs(environ)
    repo = RunRepository(service.history_store())
    if pages_only:  # the index as it is, warm; the scan's figure is not taken
        service.list_runs(None, all_projects=True, query=RunQuery(last=50, limit=50))
        print(f"\n{label}: the runs page, warm (no scan; --pages-only)")
        pages(child_env(environ), rounds, float("nan"))
        return
    if not keep_index:
        service.index_path(repo.store).unlink(missing_ok=True)
    cold = timed(lambda: service.list_runs(None, all_projects=True, query=RunQuery(last=50, limit=50)), 1)
    state = "kept from the last bench run" if keep_index else "cold, no index file"
    print(f"\n{label}: the index built from the store ({state}) in {cold:.2f} s   [{load()}]", flush=True)
    started = time.perf_counter()
    # The plain scan: list the store, read every record (on a loaded machine Azurite may take most of an hour).
    every = [] if skip_scan else list(repo.iter_runs())
    scan = float("nan") if skip_scan else time.perf_counter() - started
    if skip_scan:
        print(f"{label}: plain scan skipped (--skip-full-scan): '-' below where it is needed", flush=True)
    else:
        print(f"{label}: plain scan (list the store, read all {len(every):,} records) in {scan:.2f} s   [{load()}]", flush=True)
    print(f"  {'operation':<56}{'index':>8}{'CPU':>7}{'scan':>9}{'scan/index':>11}{'CLI wall':>9}{'CLI CPU':>8}")
    env = child_env(environ)
    scan_rounds = 1 if label == "azurite" else rounds  # listing 20,000 blobs takes Azurite a minute
    for name, (query, args) in QUERIES.items():
        listed = lambda: service.list_runs(None, all_projects=True, query=query)  # noqa: E731
        if query.last and not (query.sort or query.statuses):
            wall, cpu, scanned, ratio = interleaved(listed, lambda: newest_by_scan(repo, query.last or 0), rounds, scan_rounds)
        else:  # the records are read once above; each round filters and sorts them again
            wall, cpu, scanned, _ = interleaved(listed, lambda: by_scan(every, query), rounds, rounds)
            scanned += scan
            ratio = scanned / wall
        cli_wall, cli_cpu = cli_times(env, args, rounds)
        print(f"  {name:<56}{wall:>7.3f}s{cpu:>6.3f}s{_seconds(scanned):>9}{_times(ratio):>11}{cli_wall:>8.2f}s{cli_cpu:>7.2f}s"
              f"   [{load()}]", flush=True)
    pages(env, rounds, scan)
    if not repo.store.cheap_listing:
        index = RunIndex(service.index_path(repo.store), repo.store.location)
        whole = timed(lambda: sync_index(index, repo, full_every=0), 1)
        print(f"  the hourly whole-store check of the index (every run id listed): {whole:.2f} s   [{load()}]")


def _seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}s"


def _times(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio:.0f}x"


def pages(env: dict[str, str], rounds: int, scan: float) -> None:
    """The runs page as a browser gets it: an HTTP GET of the real ``sparkjobs ui`` server, warm.
    Without the index a page (its total, filter choices and columns) needs every record: the scan."""
    ui = UiProcess("--port", "0", "--all", env=env, cwd=REPO)
    try:
        ui.wait_for_url(seconds=600)  # noqa: the first listing may build the index
        for name, path in PAGES.items():
            get = lambda: urllib.request.urlopen(ui.url + path, timeout=600).read()  # noqa: E731
            get()
            before = server_cpu(ui.process.pid)
            wall = timed(get, rounds)
            cpu = (server_cpu(ui.process.pid) - before) / rounds
            print(f"  {name:<56}{wall:>7.3f}s{cpu:>6.3f}s{_seconds(scan):>9}{_times(scan / wall):>11}   [{load()}]", flush=True)
    finally:
        ui.stop()


def server_cpu(pid: int) -> float:
    """The server process's CPU time so far (user + system), from /proc: its share of a page."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def startup(env: dict[str, str], rounds: int) -> None:
    """How much of a warm ``runs list`` is Python starting and importing, whatever the store holds."""
    bare = child_times([CLI_PYTHON, "-c", "pass"], env, rounds)
    imports = child_times([CLI_PYTHON, "-c", "import sparkjobs.cli_commands, sparkjobs.history.index"], env, rounds)
    print(f"\nstart-up of {CLI_PYTHON}: python -c pass {bare[0]:.2f} s wall, {bare[1]:.2f} s CPU; with the imports `runs list` "
          f"needs {imports[0]:.2f} s wall, {imports[1]:.2f} s CPU   [{load()}]", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", choices=["local", "azurite", "both"], default="both")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "sparkjobs-bench-history")
    parser.add_argument("--skip-full-scan", action="store_true", help="do not read every record (filtered and sorted scans)")
    parser.add_argument("--keep-index", action="store_true", help="time the index as the last bench run left it (no cold build)")
    parser.add_argument("--pages-only", action="store_true", help="time only the runs page, on the index as it is")
    parser.add_argument("--azurite-port", type=int, default=None,
                        help="use the Azurite already listening on this port (its runs kept between bench runs)")
    parser.add_argument("--cli-python", default=sys.executable,
                        help="the interpreter that runs the timed CLI commands (default: this one)")
    options = parser.parse_args()
    global CLI_PYTHON
    CLI_PYTHON = options.cli_python
    records = None
    if options.store in ("local", "both"):
        home = options.data / "local-home"
        environ = {"SPARKJOBS_HOME": str(home)}
        if not (home / DONE_MARKER).exists():
            records = records or make_records(options.runs)
            started = time.perf_counter()
            write_runs(SparkJobs(environ).history_store(), records)
            print(f"local: wrote {len(records):,} runs in {time.perf_counter() - started:.0f} s")
        bench("local", environ, options.rounds, options.pages_only, options.skip_full_scan,
                  options.keep_index)
        if not options.pages_only:
            startup(child_env(environ), options.rounds)
    if options.store in ("azurite", "both"):
        from plugins.azurite import Azurite, start_azurite, stop_azurite

        if options.azurite_port:  # writing 20,000 blobs takes Azurite minutes: reuse one left running
            server = Azurite(options.azurite_port, process=None, workdir=options.data)  # type: ignore[arg-type]
        else:  # in memory: Azurite's on-disk store rewrites itself whole as it grows
            server = start_azurite()
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
            bench("azurite", environ, options.rounds, options.pages_only, options.skip_full_scan,
                  options.keep_index)
        finally:
            if not options.azurite_port:
                stop_azurite(server)


if __name__ == "__main__":
    main()
