"""How much a Livy poller costs and how late it shows log lines.

Runs the Livy-protocol test server from tests/livy_server with its fast ``python`` runner
(Spark itself is not what is measured) and a short poll interval, then prints:
- requests per poll interval in steady state (target <= 1), for wait() and for tail();
- log-line latency: from the server reading a line off the job's pipe to the client
  yielding it (target: within one interval).
Takes about 30 seconds.  Run as ``python bench/livy_polling.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from livy_server import LivyTestServer  # noqa: E402

from livy import BatchRequest, LivyClient, RetryPolicy  # noqa: E402

INTERVAL = 0.2
PRINTER = """
import sys, time
count, gap = int(sys.argv[1]), float(sys.argv[2])
for i in range(count):
    print(f"bench line {i:05d}", flush=True)
    time.sleep(gap)
"""


class Window:
    """Counts polls between two moments well inside the run: the steady state."""

    def __init__(self, server: LivyTestServer, begin: float, length: float) -> None:
        self.server, self.length, self.counts = server, length, [0, 0]
        self._thread = threading.Thread(target=self._watch, args=(begin,), daemon=True)
        self._thread.start()

    def polls(self) -> int:
        paths = ("/state", "/log", "/batches/0")
        return sum(self.server.count("GET", path) for path in paths)

    def _watch(self, begin: float) -> None:
        time.sleep(begin)
        self.counts[0] = self.polls()
        time.sleep(self.length)
        self.counts[1] = self.polls()

    def per_interval(self) -> float:
        self._thread.join(timeout=60)
        return (self.counts[1] - self.counts[0]) / (self.length / INTERVAL)


def run(folder: Path, label: str, count: int, gap: float, follow: bool) -> None:
    with LivyTestServer(runner="python", whitelist=[folder]) as server:
        client = LivyClient(server.url, retry=RetryPolicy(attempts=3, backoff=0.1))
        request = BatchRequest(
            file=str(folder / "printer.py"), args=[str(count), str(gap)], name=label
        )
        handle = client.submit(request)
        start = time.monotonic()
        window = Window(server, 1.0, max(0.6, count * gap - 2.0))
        seen: dict[str, float] = {}
        if follow:
            for line in handle.tail(timeout=60, interval=INTERVAL):
                seen.setdefault(line.text, time.monotonic())
        else:
            handle.wait(timeout=60, interval=INTERVAL)
        elapsed = time.monotonic() - start
        polls = window.polls()
        record_times = server.registry.all()[0].first_seen
        client.close()
    steady = window.per_interval()
    print(
        f"{label:<30} {elapsed:5.1f} s, {polls:3d} polls, steady state {steady:4.2f} requests/interval"
        f" (+-{INTERVAL / window.length:.2f} at the window edges)",
        end="",
    )
    if not follow:
        print()
        return
    delays = sorted(seen[text] - record_times[text] for text in seen if text in record_times)
    missing = count - sum(1 for text in seen if text.startswith("bench line"))
    p95 = delays[int(0.95 * (len(delays) - 1))]
    mean = statistics.mean(delays)
    print(
        f"  latency mean {mean:.3f} s = {mean / INTERVAL:.2f} intervals,"
        f" p95 {p95 / INTERVAL:.2f}, max {delays[-1] / INTERVAL:.2f} intervals; lines missing {missing}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="livy-bench-") as tmp:
        folder = Path(tmp)
        (folder / "printer.py").write_text(PRINTER)
        print(f"poll interval {INTERVAL} s; python runner (fake job), test server on 127.0.0.1")
        run(folder, "wait(), job quiet 8 s", 1, 8.0, follow=False)
        run(folder, "tail(), 20 lines/s for 6 s", 120, 0.05, follow=True)
        run(folder, "tail(), 1 line/0.7 s for 7 s", 10, 0.7, follow=True)
        run(folder, "tail(), ~2000 lines/s (lossy)", 6000, 0.0005, follow=True)


if __name__ == "__main__":
    main()
