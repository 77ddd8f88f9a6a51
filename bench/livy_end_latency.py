"""End latency of a cluster run: from the batch reaching a final state in Livy to
``sparkjobs run`` returning, and what the polling costs meanwhile.

    python bench/livy_end_latency.py [--runs 7] [--runner spark-submit|python] [--state-poll 5]

Each run is the real CLI (``sparkjobs run -c hdi``, default polling) against the
Livy-protocol test server (tests/livy_server) through the HTTPS gateway (tests/gateway:
TLS with a test CA, basic auth, ``/livy``), with ``storage`` a local folder. The job prints
a line every 4 s and ends after a random 25-30 s, so its end falls anywhere in the poll
schedule. Printed:
- end latency: the server's moment of setting the batch's final state, to the CLI process
  having exited. Target: median <= 2 s.
- steady-state requests: Livy requests through the gateway from 20 s after the POST (past
  the fast polls after the submission and the state change) until the job says it is
  finishing, per 5 s (from the gaps between them, so the window's edges do not count).
  Target: <= 1.
With ``--runner spark-submit`` (the default) batches run real spark-submit, whose shutdown
after the script is what a Livy log shows of a job ending; ``python`` runs the bootstrap
with plain Python (no Spark, so nearly no warning before the end). ``--state-poll 5`` (the
default) has the server set a batch's final state as Livy on YARN (HDInsight) does, at its
next 5 s poll of the application after the job ended; ``--state-poll 0`` sets it at once,
as Livy does with a local master. About 40 s per run.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from gateway import Gateway, make_tls  # noqa: E402
from livy_server import LivyTestServer  # noqa: E402

from livy import FINISHING  # noqa: E402
from sparkjobs.targets.livy_execution import BOOTSTRAP_FINISHING  # noqa: E402

HINTS = [re.compile(p) for p in (*FINISHING, BOOTSTRAP_FINISHING)]

JOB = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    print("working", flush=True)
    time.sleep(min(4.0, max(0.0, end - time.monotonic())))
"""
STEADY_AFTER = 20.0  # seconds after the POST: the fast polls after the start are over


def make_project(root: Path, gateway: Gateway, store: Path) -> Path:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "hdi.compute").write_text(
        f"type: cluster\n{gateway.compute_keys()}storage: {store.as_uri()}\n"
        "conf:\n  spark.ui.enabled: 'false'\n"
    )
    (root / "aml_config" / "hdi.runconfig").write_text("Target: hdi\nFramework: PySpark\nArgumentVector: ['$file']\n")
    (root / "aml_config" / "project.yml").write_text("name: bench\n")
    (root / "job.py").write_text(JOB)
    return root


def one_run(project: Path, env: dict[str, str], server: LivyTestServer, gateway: Gateway, seconds: float) -> tuple[float, list[float]]:
    """The end latency of one run, and the gaps between its requests in steady state."""
    before = len(server.registry.all())
    started = time.monotonic()
    command = [sys.executable, "-m", "sparkjobs.cli", "run", "--project", str(project), "-c", "hdi", "job.py", f"{seconds:.2f}"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    returned = time.monotonic()
    if done.returncode != 0:
        raise SystemExit(f"the run failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    record = server.registry.all()[before]
    assert record.finished_at is not None
    posted = next(s.at for s in gateway.requests_between(started, returned) if s.method == "POST")
    with server.registry.lock:
        hints = [at for line, at in record.first_seen.items() if any(h.search(line) for h in HINTS)]
    steady_end = min(hints) if hints else record.finished_at
    steady = [s.at for s in gateway.requests_between(posted + STEADY_AFTER, steady_end)]
    if os.environ.get("BENCH_TRACE"):
        for seen in gateway.requests_between(started, returned):
            print(f"    {seen.at - record.finished_at:+7.2f} {seen.method} {seen.path}")
    return returned - record.finished_at, [b - a for a, b in zip(steady, steady[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--runner", choices=("spark-submit", "python"), default="spark-submit")
    parser.add_argument("--state-poll", type=float, default=5.0, help="seconds between Livy's polls of YARN (0: none)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sparkjobs-end-latency-") as tmp:
        base = Path(tmp)
        tls = make_tls(base / "tls")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKJOBS_", "AZURE_STORAGE"))}
        server = LivyTestServer(runner=options.runner, whitelist=[base], state_poll=options.state_poll)
        with server, Gateway(server.url, tls=tls) as gateway:
            assert gateway.auth is not None
            env.update(SPARKJOBS_HOME=str(base / "home"), SPARKJOBS_LIVY_PASSWORD=gateway.auth[1])
            project = make_project(base / "proj", gateway, base / "store")
            lag = f"final state at Livy's next {options.state_poll:g} s poll of YARN" if options.state_poll else "final state at once"
            print(f"{options.runner} batches behind the HTTPS gateway on 127.0.0.1, {lag}; default polling; {options.runs} runs")
            latencies, gaps = [], []
            rng = random.Random(9)
            for index in range(options.runs):
                latency, steady = one_run(project, env, server, gateway, rng.uniform(25.0, 30.0))
                latencies.append(latency)
                gaps += steady
                shown = ", ".join(f"{gap:.1f}" for gap in steady)
                print(f"  run {index + 1}: end latency {latency:.2f} s; steady-state gaps between requests: {shown} s")
    print(
        f"end latency: median {statistics.median(latencies):.2f} s, min {min(latencies):.2f}, max {max(latencies):.2f} "
        f"(target: median <= 2 s)"
    )
    per_five = 5.0 * len(gaps) / sum(gaps) if gaps else float("nan")
    print(f"steady state: {len(gaps)} gaps between requests, {sum(gaps):.1f} s = {per_five:.2f} requests per 5 s (target <= 1)")


if __name__ == "__main__":
    main()
