"""A real Spark standalone cluster on 127.0.0.1: one master and one worker (1 core, 1 GB),
started from the installed pyspark distribution with ``bin/spark-class``.

``start_spark_cluster()`` and ``stop_spark_cluster()`` are plain functions; the session
fixture ``spark_cluster`` starts the cluster the first time a test asks for it and stops it
at the end. Each daemon runs in its own process group (``start_new_session``), and stopping
signals exactly those groups, which also ends the executors the worker launched. Every wait
has a deadline.

Jobs submitted to it should set ``spark.driver.host 127.0.0.1``, so executors reach the
driver on the loopback interface.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["SparkCluster", "spark_cluster", "spark_home", "start_spark_cluster", "stop_spark_cluster"]

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
# The daemons do little work in tests: stop at the C1 JIT and use the serial collector, which
# leaves the 2 cores to the jobs.
_DAEMON_JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


@dataclass(frozen=True)
class SparkCluster:
    master_url: str  # spark://127.0.0.1:PORT
    webui_url: str  # http://127.0.0.1:PORT (the master's web UI)
    workdir: Path = field(repr=False)
    processes: tuple[subprocess.Popen, ...] = field(repr=False, compare=False)

    def state(self, timeout: float = 5.0) -> dict[str, Any]:
        """The master's status JSON: ``workers``, ``activeapps``, ``completedapps``, ..."""
        with urllib.request.urlopen(self.webui_url + "/json/", timeout=timeout) as response:
            return json.loads(response.read())

    def completed_app(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """The completed application called ``name``, waiting (bounded) for the master to list it."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            for app in state.get("completedapps", []):
                if app.get("name") == name:
                    return app
            if time.monotonic() > deadline:
                names = [a.get("name") for a in state.get("activeapps", []) + state.get("completedapps", [])]
                raise AssertionError(f"no completed application {name!r} after {timeout:.0f} s; the master lists {names}")
            time.sleep(0.5)

    def logs(self, limit: int = 4000) -> str:
        """The tail of each daemon's output, for failure messages."""
        parts = []
        for path in sorted(self.workdir.glob("*.out")) + sorted((self.workdir / "logs").glob("*")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-limit:]}")
        return "\n".join(parts)


def spark_home() -> Path:
    """The installed pyspark package, which is a Spark distribution (bin/, jars/)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.origin:
        raise RuntimeError("pyspark is not installed; run 'bash tests/run'.")
    return Path(spec.origin).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _daemon(home: Path, workdir: Path, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    with open(workdir / f"{name}.out", "wb") as out:
        return subprocess.Popen(
            [str(home / "bin" / "spark-class"), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,  # its own process group, stopped as a whole by its pid
        )


def _alive_workers(cluster: SparkCluster) -> int:
    try:
        workers = cluster.state(timeout=2).get("workers", [])
    except (OSError, ValueError):  # not listening yet, or a half-started UI
        return 0
    return sum(1 for w in workers if w.get("state") == "ALIVE")


def start_spark_cluster(*, timeout: float = 120.0, attempts: int = 2) -> SparkCluster:
    """Start a master and one worker on free loopback ports; return once the worker is ALIVE."""
    home = spark_home()
    last = ""
    for _ in range(attempts):  # a free port may be taken between choosing and binding
        workdir = Path(tempfile.mkdtemp(prefix="spark-cluster-"))
        env = dict(os.environ)
        for name in ("SPARK_HOME", "SPARK_CONF_DIR", "PYTHONPATH"):
            env.pop(name, None)
        env.update(
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_WORKER_DIR=str(workdir / "work"),
            SPARK_LOG_DIR=str(workdir / "logs"),
            SPARK_DAEMON_JAVA_OPTS=_DAEMON_JAVA_OPTS,
        )
        port, webui, worker_ui = free_port(), free_port(), free_port()
        master_url = f"spark://127.0.0.1:{port}"
        master = _daemon(home, workdir, "master", [MASTER_CLASS, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(webui)], env)
        worker = _daemon(
            home, workdir, "worker",
            [WORKER_CLASS, "--host", "127.0.0.1", "--webui-port", str(worker_ui), "--cores", "1", "--memory", "1g", master_url],
            env,
        )
        cluster = SparkCluster(master_url, f"http://127.0.0.1:{webui}", workdir, (worker, master))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and master.poll() is None and worker.poll() is None:
            if _alive_workers(cluster) == 1:
                return cluster
            time.sleep(0.5)
        last = cluster.logs()
        stop_spark_cluster(cluster)
    raise RuntimeError(f"The Spark standalone cluster did not start in {attempts} attempts of {timeout:.0f} s:\n{last}")


def stop_spark_cluster(cluster: SparkCluster, grace: float = 15.0) -> None:
    """SIGTERM each daemon's process group (the worker first, so it ends its executors), then
    SIGKILL what is left after the grace period; remove the cluster's folder."""
    for process in cluster.processes:
        _signal_group(process, signal.SIGTERM)
    for process in cluster.processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=grace)
        _signal_group(process, signal.SIGKILL)  # anything of the group that outlived its leader
    shutil.rmtree(cluster.workdir, ignore_errors=True)


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # the group this fixture created; its id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="session")
def spark_cluster() -> Iterator[SparkCluster]:
    """A running standalone master and worker for the session; fails (never skips) if it cannot start."""
    try:
        cluster = start_spark_cluster()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        stop_spark_cluster(cluster)
