"""What a cluster run costs before and while its Livy batch runs.

    python bench/livy_submit.py [--runs 5]

Against the Livy-protocol test server (tests/livy_server, ``python`` runner: Spark itself is
not what is measured) and a run store for the cluster's ``storage``:
1. Submission overhead with a cached snapshot: from the start of ``sparkjobs run`` to the
   server receiving the POST. Target <= 0.5 s. Measured in-process (``SparkJobs.run``) and
   through the CLI (which adds Python start-up and imports), for a file:// store and for
   Azure Blob storage (Azurite on 127.0.0.1, started here and stopped by its pid).
2. Steady-state polling of a quiet running batch: Livy requests per poll interval. Target <= 1.
3. Log-line latency: from the server reading a line off the job's pipe to the run's observer
   receiving it. Target: within one interval.
Takes about a minute.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from livy_server import LivyTestServer  # noqa: E402

from plugins.azurite import start_azurite, stop_azurite  # noqa: E402
from sparkjobs.service import RunObserver, RunRequest, SparkJobs  # noqa: E402

INTERVAL = 0.5
QUIET = "import sys, time\ntime.sleep(float(sys.argv[1]))\n"
PRINTER = "import sys, time\nfor i in range(int(sys.argv[1])):\n    print(f'bench line {i:03d}', flush=True)\n    time.sleep(0.3)\n"


class PostClock:
    """Records when the server accepted each POST /batches (the registry creates the batch)."""

    def __init__(self, server: LivyTestServer) -> None:
        self.times: list[float] = []
        create = server.registry.create

        def timed(body: object):
            self.times.append(time.monotonic())
            return create(body)

        server.registry.create = timed  # type: ignore[method-assign]


def make_project(root: Path, server: LivyTestServer, storage: str) -> Path:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "hdi.compute").write_text(f"type: cluster\nlivy: {server.url}\nstorage: {storage}\n")
    (root / "aml_config" / "hdi.runconfig").write_text("Target: hdi\nFramework: PySpark\nArgumentVector: ['$file']\n")
    (root / "aml_config" / "project.yml").write_text("name: bench\n")
    (root / "quiet.py").write_text(QUIET)
    (root / "printer.py").write_text(PRINTER)
    for i in range(200):  # a project of a realistic file count, so a cached snapshot is a real test
        (root / "src" / f"m{i // 20}").mkdir(parents=True, exist_ok=True)
        (root / "src" / f"m{i // 20}" / f"f{i}.py").write_text(f"VALUE = {i}\n" * 50)
    return root


def submit_overhead(label: str, storage: str, env: dict[str, str], base: Path, runs: int) -> None:
    with LivyTestServer(runner="python", whitelist=[base]) as server:
        posts = PostClock(server)
        project = make_project(base / f"proj-{label}", server, storage)
        service = SparkJobs(env)
        request = RunRequest(project, "hdi", "quiet.py", ("0",), detach=True)
        service.run(request)  # first run: uploads the snapshot and the bootstrap
        in_process = []
        for _ in range(runs):
            start = time.monotonic()
            SparkJobs(env).run(request)
            in_process.append(posts.times[-1] - start)
        through_cli = []
        command = [sys.executable, "-m", "sparkjobs.cli", "run", "--project", str(project), "-c", "hdi", "--detach", "quiet.py", "0"]
        for _ in range(runs):
            start = time.monotonic()
            subprocess.run(command, env=env, cwd=REPO, capture_output=True, check=True)
            through_cli.append(posts.times[-1] - start)
    print(
        f"submit, cached snapshot, {label:<9} in-process median {statistics.median(in_process):.3f} s "
        f"(max {max(in_process):.3f}); CLI median {statistics.median(through_cli):.3f} s (max {max(through_cli):.3f})"
    )


def polling_and_latency(env: dict[str, str], base: Path) -> None:
    with LivyTestServer(runner="python", whitelist=[base]) as server:
        project = make_project(base / "proj-poll", server, (base / "poll-store").as_uri())
        service = SparkJobs(dict(env, SPARKJOBS_LIVY_POLL_SECONDS=str(INTERVAL)))
        counts: list[int] = []

        def polls() -> int:
            return sum(n for key, n in server.requests.items() if key.startswith("GET "))

        def window() -> None:
            time.sleep(2.0)
            counts.append(polls())
            time.sleep(6.0)
            counts.append(polls())

        watcher = threading.Thread(target=window, daemon=True)
        watcher.start()
        service.run(RunRequest(project, "hdi", "quiet.py", ("10",)))
        watcher.join()
        per_interval = (counts[1] - counts[0]) / (6.0 / INTERVAL)
        print(f"steady-state polling, quiet batch: {per_interval:.2f} requests per {INTERVAL} s interval (target <= 1)")

        seen: dict[str, float] = {}
        observer = RunObserver(on_line=lambda line: seen.setdefault(line, time.monotonic()))
        service.run(RunRequest(project, "hdi", "printer.py", ("20",)), observer)
        first_seen = server.registry.all()[-1].first_seen
        delays = sorted(seen[text] - first_seen[text] for text in first_seen if text.startswith("bench line") and text in seen)
        print(
            f"log-line latency, 1 line / 0.3 s: mean {statistics.mean(delays) / INTERVAL:.2f}, "
            f"max {delays[-1] / INTERVAL:.2f} intervals over {len(delays)} lines (target <= 1)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sparkjobs-livy-bench-") as tmp:
        base = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKJOBS_", "AZURE_STORAGE"))}
        env.update(SPARKJOBS_HOME=str(base / "home"), SPARKJOBS_LIVY_POLL_SECONDS=str(INTERVAL))
        print(f"Livy test server (python runner) on 127.0.0.1; poll interval {INTERVAL} s")
        submit_overhead("file://", (base / "store").as_uri(), env, base, options.runs)
        azurite = start_azurite()
        try:
            azure_env = dict(env, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
            storage = f"wasbs://bench@{azurite.account}.blob.core.windows.net/cluster"
            submit_overhead("Azurite", storage, azure_env, base, options.runs)
        finally:
            stop_azurite(azurite)
        polling_and_latency(env, base)


if __name__ == "__main__":
    main()
