"""What the HDInsight benchmarks share: HDInsight in a box (tests/plugins/hdinsight.py: real
Livy 0.7.1 in front of a real YARN in yarn-cluster mode, hadoop-azure on Azurite over HTTPS,
the HTTPS gateway with basic auth), a project using it, and the clocks read at the gateway.

Not a benchmark itself; bench/hdi_submission.py, hdi_end_latency.py and hdi_whole_run.py use it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from gateway import Gateway, Seen  # noqa: E402

from plugins.hdinsight import HDInsight, start_hdinsight, stop_hdinsight  # noqa: E402

__all__ = ["CONTAINER", "BenchProject", "GatewayClock", "REPO", "cpu_seconds", "hdinsight", "load", "make_project", "sparkjobs_run"]

CONTAINER = "bench"


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as ``uptime`` prints them."""
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


@contextmanager
def hdinsight(prefix: str) -> Iterator[HDInsight]:
    """Start HDInsight in a box in a temporary folder; stop it (by pid) at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        started = time.monotonic()
        print(f"starting HDInsight in a box (YARN, Livy, Azurite over HTTPS, gateway); {load()}", flush=True)
        h = start_hdinsight(Path(tmp) / "hdi")
        print(f"  started in {time.monotonic() - started:.0f} s; Livy {h.cluster.livy_url}, gateway {h.livy_url}", flush=True)
        try:
            yield h
        finally:
            stop_hdinsight(h)


@dataclass(frozen=True)
class BenchProject:
    root: Path
    env: dict[str, str]  # the CLI's environment: the user's credentials file, a fresh SPARKJOBS_HOME

    def run_argv(self, script: str, *args: str, detach: bool = False) -> list[str]:
        return [sys.executable, "-m", "sparkjobs.cli", "run", "--project", str(self.root), "-c", "hdi",
                *(["--detach"] if detach else []), script, *args]


def make_project(h: HDInsight, base: Path, scripts: dict[str, str], *, files: int = 200) -> BenchProject:
    """A project whose ``hdi`` compute reaches the real Livy through the gateway, with
    ``storage`` on Azurite (``wasbs://bench@devstoreaccount1...``), ``files`` small modules
    (a realistic project, so that a cached snapshot is a real test) and ``scripts``."""
    root = h.write_project(base / "proj", CONTAINER, "team")
    for name, text in scripts.items():
        (root / name).write_text(text)
    for i in range(files):
        folder = root / "src" / f"m{i // 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.py").write_text(f"VALUE = {i}\n" * 50)
    credentials = h.write_credentials(base / "user" / "credentials.json")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPARKJOBS_", "AZURE_STORAGE", "PYSPARK")) and k != "PYTHONDONTWRITEBYTECODE"}
    # The CLI runs this worktree's code, whatever the editable install points at. Its bytecode is
    # cached (outside the worktree), as an installed package's is: the development machines set
    # PYTHONDONTWRITEBYTECODE, which would make every run compile sparkjobs' ~50 modules again
    # (0.15 s of CPU that no user pays).
    env.update(SPARKJOBS_HOME=str(base / "home"), SPARKJOBS_CREDENTIALS=str(credentials), PYTHONPATH=str(REPO),
               PYTHONPYCACHEPREFIX=str(base / "pycache"))
    return BenchProject(root, env)


def sparkjobs_run(project: BenchProject, argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env=project.env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"the run failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


class GatewayClock:
    """When the gateway had Livy's answer to each request in hand (the moment it records the
    request, right after Livy answered and before it writes to the client): for a POST, the
    moment of Livy's 201. The gateway's own ``Seen.at`` is when the request arrived."""

    def __init__(self, gateway: Gateway) -> None:
        self.answered: list[tuple[float, Seen]] = []
        self.cpu_at_post: list[float] = []  # the watched process's CPU seconds when its POST was answered
        self.watched_pid: int | None = None
        self._lock = threading.Lock()
        record = gateway._record

        def timed(seen: Seen) -> None:
            at = time.monotonic()
            if seen.method == "POST" and self.watched_pid is not None:
                self.cpu_at_post.append(cpu_seconds(self.watched_pid))
            with self._lock:
                self.answered.append((at, seen))
            record(seen)

        gateway._record = timed  # type: ignore[method-assign]

    def posts_after(self, start: float) -> list[tuple[float, Seen]]:
        with self._lock:
            return [(at, s) for at, s in self.answered if at >= start and s.method == "POST" and s.status == 201]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux /proc); NaN if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)
