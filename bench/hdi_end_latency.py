"""End latency on HDInsight in a box: from the batch reaching a final state in the REAL Livy to
``sparkjobs run -c hdi`` returning, and how often the CLI polls meanwhile.

    python bench/hdi_end_latency.py [--runs 3]

Each run is the real CLI (default polling) against real Apache Livy 0.7.1 in yarn-cluster mode
on a real YARN (tests/plugins/hdinsight.py), through the HTTPS gateway with basic auth, with
``storage`` on Azurite over HTTPS. The job starts Spark, prints a line every 4 s and ends after
a random 25-30 s, so its end falls anywhere in the CLI's poll schedule. Livy learns the end
from YARN at its own next poll (``livy.server.yarn.poll-interval``, 5 s); that lag is before
the final state and not measured here.

- **final state**: a thread of this process reads ``GET /batches`` straight from Livy (not
  through the gateway, so it is not counted as the CLI's) every 0.1 s and notes the first
  time each batch shows ``success``/``dead``/``killed``. Livy's own log cannot serve: it has no
  line for a batch's state change and stamps whole seconds.
- **returned**: the CLI process has exited (``subprocess.run`` returns).
  End latency = returned - final state. Target: median <= 2 s.
  It is printed in two parts: **seen**, the CLI's first state read (``GET /batches/N``) at the
  gateway after the final state, and **finishing**, from then to the exit (the driver log, the
  exit record and the outputs read from storage, the run record).
- **steady state**: the CLI's requests through the gateway from 22 s after the batch was seen
  ``running`` (the CLI sees the change up to 5 s late, polls every 0.5 s for 10 s, then backs
  off 1, 2, 4 s: README's "Polling") until the final state, leaving out the CLI's last read of
  the batch (the one that saw the end, or that followed the exit record in storage), per 5 s, from the gaps between
  them. Target: <= 1 request per 5 s. None of the CLI's finishing hints can show meanwhile:
  in yarn-cluster mode Livy's log holds spark-submit's output only, never the driver's.

``BENCH_TRACE=1`` prints every request of each run relative to the final state. Each run takes
1.5-5 minutes on the busy 2-core machine (YARN's container start dominates).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from hdi_common import BenchProject, hdinsight, load, make_project, sparkjobs_run

from livy import BatchState, LivyClient, LivyError

JOB = """
import sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    print("working", flush=True)
    time.sleep(min(4.0, max(0.0, end - time.monotonic())))
"""
STEADY_AFTER_RUNNING = 22.0  # seconds: seen up to 5 s late, a 10 s burst of fast polls, then 1 + 2 + 4 s of backing off
WATCH_EVERY = 0.1


class LivyWatcher:
    """Reads Livy's batch list directly (every 0.1 s by default); notes when each batch is
    first seen in each state."""

    def __init__(self, livy_url: str, every: float = WATCH_EVERY) -> None:
        self._every = every
        self._client = LivyClient(livy_url, requested_by="bench")
        self.first_seen: dict[tuple[int, BatchState], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="livy-watcher")
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self._every):
            try:
                batches = self._client.list_batches().batches
            except LivyError:
                continue  # the next read decides
            now = time.monotonic()
            for batch in batches:
                self.first_seen.setdefault((batch.id, batch.state), now)

    def when(self, batch_id: int, states: frozenset[BatchState] | tuple[BatchState, ...]) -> float | None:
        times = [at for (bid, state), at in list(self.first_seen.items()) if bid == batch_id and state in states]
        return min(times) if times else None

    def newest_since(self, start: float) -> int:
        return max(bid for (bid, _), at in list(self.first_seen.items()) if at >= start)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._client.close()


def one_run(project: BenchProject, h, watcher: LivyWatcher, seconds: float) -> tuple[float, float, list[float], int]:
    """(end latency, its seen part, steady-state gaps between the CLI's requests, the run's request count)."""
    started = time.monotonic()
    sparkjobs_run(project, project.run_argv("job.py", f"{seconds:.2f}"))
    returned = time.monotonic()
    batch_id = watcher.newest_since(started)
    # On YARN the run finishes from its exit record, often before Livy has the final state:
    # wait (bounded) for the watcher to see it; the latency is then negative.
    for _ in range(120):
        if watcher.when(batch_id, BatchState.TERMINAL) is not None:
            break
        time.sleep(0.5)
    final = watcher.when(batch_id, BatchState.TERMINAL)
    running = watcher.when(batch_id, (BatchState.RUNNING,))
    if final is None or running is None:
        raise SystemExit(f"the watcher did not see batch {batch_id} running and then ending")
    # The CLI's last read of the batch ends its watch (it saw the final state, or it followed the
    # exit record in storage: the end was likely), so it is not steady polling.
    reads = [s.at for s in h.gateway.requests_between(started, returned) if s.method == "GET" and not s.path.endswith("/log")]
    last_read = reads[-1] if reads else final
    steady = [s.at for s in h.gateway.requests_between(running + STEADY_AFTER_RUNNING, min(final, last_read))]
    every = h.gateway.requests_between(started, returned)
    if os.environ.get("BENCH_TRACE"):
        print(f"    running at {running - final:+.2f} s")
        for seen in every:
            print(f"    {seen.at - final:+8.2f} {seen.method} {seen.path} {seen.status}")
    seen = next((s.at for s in every if s.at >= final and s.method == "GET" and not s.path.endswith("/log")), returned)
    return returned - final, seen - final, [b - a for a, b in zip(steady, steady[1:])], len(every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with hdinsight("sparkjobs-hdi-end-") as h, tempfile.TemporaryDirectory(prefix="sparkjobs-hdi-end-") as tmp:
        project = make_project(h, Path(tmp), {"job.py": JOB})
        watcher = LivyWatcher(h.cluster.livy_url)
        print(f"real Livy 0.7.1 (yarn-cluster) behind the HTTPS gateway; default polling; {options.runs} runs", flush=True)
        latencies, seens, gaps = [], [], []
        rng = random.Random(9)
        try:
            for index in range(options.runs):
                latency, seen, steady, count = one_run(project, h, watcher, rng.uniform(25.0, 30.0))
                latencies.append(latency)
                seens.append(seen)
                gaps += steady
                shown = ", ".join(f"{gap:.1f}" for gap in steady)
                print(f"  run {index + 1}: end latency {latency:.2f} s (seen {seen:.2f} s, finishing {latency - seen:.2f} s); "
                      f"{count} requests in all; steady-state gaps "
                      f"between requests: {shown} s; {load()}", flush=True)
        finally:
            watcher.stop()
    print(f"end latency: median {statistics.median(latencies):.2f} s, min {min(latencies):.2f}, max {max(latencies):.2f} "
          f"(target: median <= 2 s); seen: median {statistics.median(seens):.2f} s; finishing: median "
          f"{statistics.median(l - s for l, s in zip(latencies, seens)):.2f} s")
    per_five = 5.0 * len(gaps) / sum(gaps) if gaps else float("nan")
    print(f"steady state: {len(gaps)} gaps between requests, {sum(gaps):.1f} s = {per_five:.2f} requests per 5 s (target <= 1)")


if __name__ == "__main__":
    main()
