"""HDInsight in a box: real Apache Livy in front of a real single-node YARN, on 127.0.0.1.

- **YARN**: Hadoop 3.3.4's MiniYARNCluster (one ResourceManager, one NodeManager, the Capacity
  Scheduler's ``default`` queue) in one JVM, run by tests/hdi/yarn/MiniYarn.java. There is no
  HDFS: ``fs.defaultFS`` is ``file:///``, so staging and localization use the local disk.
  Containers are real processes; their logs stay in :attr:`HdiCluster.container_log_dir`.
- **The cluster's Spark**: pyspark 3.5.3 on Hadoop 3.3.4 (:func:`cluster_spark_home`), with a
  spark-defaults.conf like a cluster's: Spark's jars already on the node (``spark.yarn.jars
  local:``), small containers, the event log on.
- **Apache Livy** 0.7.1-incubating (the newest livy-server Maven Central serves here; see
  tests/hdi/livy/pom.xml) with tests/hdi/livy.conf.template: yarn-cluster mode, CSRF on,
  recovery off, a short state-retain. Its log goes to :attr:`HdiCluster.livy_log`.

Everything is fetched once by tests/hdi/fetch.py into tests/.cache. ``start_hdi_cluster()`` and
``stop_hdi_cluster()`` are plain functions (for bench/ too); the session fixture ``hdi_cluster``
shares one cluster among all tests and fails them (never skips) naming the part that could not
be fetched or started. A plugin or conftest may override the session fixture
``hdi_cluster_options`` to add Spark, core-site or Livy settings to that shared cluster.

YARN, Livy and the containers get a small fixed environment, not the test process's, so
nothing of a test (a secret, PYTHONPATH, SPARKJOBS_HOME) reaches the cluster by accident.
Each daemon runs in its own process group and is stopped by its pid; containers YARN left
behind are found by the pid files the NodeManager wrote and are stopped the same way.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hdi.fetch import HADOOP_VERSION, LIVY_VERSION, Components, FetchError, fetch_all

__all__ = [
    "HdiCluster",
    "HdiClusterError",
    "HdiOptions",
    "cluster_pythonpath",
    "cluster_spark_home",
    "hdi_cluster",
    "hdi_cluster_options",
    "start_hdi_cluster",
    "stop_hdi_cluster",
]

REPO = Path(__file__).resolve().parents[2]
LIVY_CONF_TEMPLATE = REPO / "tests" / "hdi" / "livy.conf.template"
YARN = f"YARN (Hadoop {HADOOP_VERSION} MiniYARNCluster)"
LIVY = f"Apache Livy {LIVY_VERSION}"
# Daemons and the driver/executor JVMs do little work in tests: stop at the C1 JIT and use the
# serial collector, which leaves the machine's 2 cores to the jobs.
LIGHT_JVM = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
# Hadoop 3.3 predates Java 17: its web apps (Guice) reflect into java.lang.
JAVA17_OPENS = [f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in (
    "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
    "java.util.concurrent", "java.util.concurrent.atomic", "sun.nio.ch", "sun.nio.cs", "sun.security.action",
    "sun.util.calendar",
)]
# What the daemons inherit from the test process; everything else is set here.
_ENV_PASSED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR")


class HdiClusterError(RuntimeError):
    """A part of the test cluster did not start; the message names it and says why."""


@dataclass(frozen=True)
class HdiOptions:
    """Additions to the shared cluster. ``env`` reaches YARN (hence every container), Livy and
    spark-submit; ``whitelist`` folders are added to Livy's local-dir whitelist."""

    spark_conf: Mapping[str, str] = field(default_factory=dict)
    core_site: Mapping[str, str] = field(default_factory=dict)
    livy_conf: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    whitelist: tuple[Path, ...] = ()
    state_retain: str = "300s"
    yarn_memory_mb: int = 6144  # room for three small jobs: each is a 896 MB driver (AM) and executor
    yarn_vcores: int = 4


class _Daemons:
    """The running processes; Livy's is replaced when it restarts, hence not a frozen field."""

    def __init__(self, yarn: subprocess.Popen, livy: subprocess.Popen | None = None) -> None:
        self.yarn = yarn
        self.livy = livy


@dataclass(frozen=True)
class HdiCluster:
    livy_url: str  # http://127.0.0.1:PORT
    yarn_rm: str  # the ResourceManager's RPC address, host:port
    spark_home: Path
    conf_dir: Path  # HADOOP_CONF_DIR: yarn-site.xml, core-site.xml
    spark_conf_dir: Path  # SPARK_CONF_DIR: spark-defaults.conf
    livy_conf_dir: Path
    livy_log: Path
    yarn_log: Path
    container_log_dir: Path  # APPLICATION_ID/CONTAINER_ID/{stdout,stderr,...}
    upload_dir: Path  # in Livy's whitelist: batch files may be file:// paths here
    event_log_dir: Path  # spark.eventLog.dir
    workdir: Path
    options: HdiOptions = field(repr=False)
    components: Components = field(repr=False)
    daemons: _Daemons = field(repr=False, compare=False)

    @property
    def livy_port(self) -> int:
        return int(self.livy_url.rsplit(":", 1)[1])

    def livy_log_text(self) -> str:
        return self.livy_log.read_text(errors="replace") if self.livy_log.is_file() else ""

    def container_logs(self, app_id: str) -> dict[str, str]:
        """Every log file of every container of one YARN application, by ``CONTAINER/FILE``."""
        folder = self.container_log_dir / app_id
        return {
            str(path.relative_to(folder)): path.read_text(errors="replace")
            for path in sorted(folder.glob("container_*/*"))
            if path.is_file()
        }

    def spark_env(self) -> dict[str, str]:
        """The environment in which spark-submit runs as the cluster's (Livy uses the same)."""
        return {
            **_base_env(),
            "SPARK_HOME": str(self.spark_home),
            "SPARK_CONF_DIR": str(self.spark_conf_dir),
            "HADOOP_CONF_DIR": str(self.conf_dir),
            "SPARK_LOCAL_IP": "127.0.0.1",
            # The spark-submit Livy starts for each batch lives as long as the batch: light, as
            # the driver's and executors' JVMs are (spark-defaults.conf).
            "SPARK_SUBMIT_OPTS": " ".join(LIGHT_JVM),
            **self.options.env,
        }

    def diagnostics(self, limit: int = 4000) -> str:
        """The tails of YARN's and Livy's logs, for failure messages."""
        parts = []
        for path in (self.yarn_log, self.livy_log):
            text = path.read_text(errors="replace") if path.is_file() else "(no file)"
            parts.append(f"--- {path}\n{text[-limit:]}")
        return "\n".join(parts)

    def stop_livy(self, grace: float = 15.0) -> None:
        if self.daemons.livy is not None:
            _stop_group(self.daemons.livy, grace)
            self.daemons.livy = None

    def start_livy(self, timeout: float = 120.0) -> None:
        """Start Livy on its port again (after :meth:`stop_livy`); with recovery off it
        remembers no batch and numbers new ones from 0."""
        if self.daemons.livy is None:
            self.daemons.livy = _start_livy(self, timeout)

    def restart_livy(self, timeout: float = 120.0) -> None:
        self.stop_livy()
        self.start_livy(timeout)


def cluster_pythonpath() -> Path:
    """The folder holding the cluster's pyspark 3.5.3 and py4j. A process that imports pyspark
    as the cluster does must have it first on PYTHONPATH, or it gets the main pyspark 4."""
    return fetch_all(log=lambda _line: None).spark_pythonpath


def cluster_spark_home() -> Path:
    """SPARK_HOME of the cluster side: pyspark 3.5.3, a Spark distribution on Hadoop 3.3.4,
    fetched into tests/.cache by tests/hdi/fetch.py (run here if it was not yet)."""
    return fetch_all(log=lambda _line: None).spark_home


# ---- starting and stopping ---------------------------------------------------------------------
def start_hdi_cluster(workdir: Path | None = None, options: HdiOptions | None = None, *,
                      timeout: float = 180.0) -> HdiCluster:
    """Fetch what is missing, start YARN, then Livy; return once Livy answers.

    Raises :class:`FetchError` or :class:`HdiClusterError` naming the part that failed.
    Everything the cluster writes goes under ``workdir`` (a new temporary folder if None).
    """
    options = options or HdiOptions()
    parts = fetch_all(log=lambda _line: None)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="hdi-cluster-")).resolve()
    folders = {name: workdir / name for name in ("hadoop-conf", "spark-conf", "livy-conf", "livy-logs", "yarn",
                                                  "upload", "staging", "spark-events")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    yarn, ready = _start_yarn(parts, folders["hadoop-conf"], folders["yarn"], options, timeout)
    cluster = HdiCluster(
        livy_url="", yarn_rm=ready["rm.address"], spark_home=parts.spark_home, conf_dir=folders["hadoop-conf"],
        spark_conf_dir=folders["spark-conf"], livy_conf_dir=folders["livy-conf"], livy_log=workdir / "livy.log",
        yarn_log=workdir / "yarn.log", container_log_dir=Path(ready["nm.log-dirs"].split(",")[0]),
        upload_dir=folders["upload"], event_log_dir=folders["spark-events"], workdir=workdir, options=options,
        components=parts, daemons=_Daemons(yarn),
    )
    try:
        _write_core_site(cluster)
        _write_spark_defaults(cluster, folders["staging"])
        port = _free_port()
        cluster = replace(cluster, livy_url=f"http://127.0.0.1:{port}")
        _write_livy_conf(cluster, port)
        cluster.start_livy(timeout)
    except BaseException:
        stop_hdi_cluster(cluster)
        raise
    return cluster


def stop_hdi_cluster(cluster: HdiCluster, grace: float = 5.0) -> None:
    """Stop Livy (and the spark-submit processes it started), then the containers, then YARN,
    each by pid. YARN gets only ``grace`` seconds: its orderly stop spends ~20 s on timers
    (log deletion, waiting for applications) that matter to nothing once its containers are
    gone. The work folder stays: it holds the logs."""
    cluster.stop_livy()
    yarn_dir = cluster.workdir / "yarn"
    _stop_containers(yarn_dir)
    _stop_group(cluster.daemons.yarn, grace)
    _stop_containers(yarn_dir)  # any the NodeManager launched meanwhile


def _java_home() -> Path:
    """The JDK spark-submit would use: JAVA_HOME's, else the one whose java is on PATH."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if java is None:
        raise HdiClusterError("Java: no java on PATH and JAVA_HOME is not set; YARN and Livy need Java 17.")
    return Path(java).resolve().parents[1]


def _base_env() -> dict[str, str]:
    env = {name: os.environ[name] for name in _ENV_PASSED if name in os.environ}
    env["JAVA_HOME"] = str(_java_home())
    return env


def _start_yarn(parts: Components, conf_dir: Path, yarn_dir: Path, options: HdiOptions,
                timeout: float) -> tuple[subprocess.Popen, dict[str, str]]:
    java = str(_java_home() / "bin" / "java")
    log_path = yarn_dir.parent / "yarn.log"
    (yarn_dir / "tmp").mkdir(exist_ok=True)  # the web apps' Jetty unpacks there, not in /tmp
    argv = [java, *JAVA17_OPENS, *LIGHT_JVM, "-Xmx768m", f"-Djava.io.tmpdir={yarn_dir / 'tmp'}",
            "-cp", parts.yarn_classpath, "MiniYarn", str(conf_dir), str(options.yarn_memory_mb),
            str(options.yarn_vcores)]
    with open(log_path, "wb") as log:  # the child keeps its own handle
        process = subprocess.Popen(argv, cwd=yarn_dir, env={**_base_env(), **options.env}, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=_die_with_parent)
    ready_file = conf_dir / "READY"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not ready_file.is_file():
        time.sleep(0.25)
    if ready_file.is_file():
        lines = ready_file.read_text().splitlines()
        return process, dict(line.split("=", 1) for line in lines if "=" in line)
    exited = process.poll()
    _stop_group(process, 10.0)
    _stop_containers(yarn_dir)
    why = f"exited with code {exited}" if exited is not None else f"was not ready within {timeout:.0f} s"
    log_text = log_path.read_text(errors="replace")
    said = [line for line in log_text.splitlines() if line.startswith("MiniYarn: ")]  # its own one-line reason
    raise HdiClusterError(f"{YARN} did not start: it {why}. {' '.join(said)}\n"
                          f"Its log ({log_path}) ends:\n{log_text[-4000:]}")


def _write_core_site(cluster: HdiCluster) -> None:
    properties = {"fs.defaultFS": "file:///", **cluster.options.core_site}
    body = "".join(
        f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n" for k, v in properties.items()
    )
    _write(cluster.conf_dir / "core-site.xml", f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n')


def _write_spark_defaults(cluster: HdiCluster, staging: Path) -> None:
    light = " ".join(LIGHT_JVM)
    conf = {
        # Spark is installed on every node of a cluster: nothing to upload per job.
        "spark.yarn.jars": f"local:{cluster.spark_home}/jars/*",
        "spark.yarn.stagingDir": staging.as_uri(),
        "spark.pyspark.python": sys.executable,
        "spark.driver.memory": "512m",
        "spark.executor.memory": "512m",
        "spark.executor.instances": "1",
        "spark.executor.cores": "1",
        # Admins' defaults go first on the command line; a job's extraJavaOptions add to them.
        "spark.driver.defaultJavaOptions": light,
        "spark.executor.defaultJavaOptions": light,
        # The driver and executors bind the loopback address, not the machine's.
        "spark.yarn.appMasterEnv.SPARK_LOCAL_IP": "127.0.0.1",
        "spark.executorEnv.SPARK_LOCAL_IP": "127.0.0.1",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": cluster.event_log_dir.as_uri(),
        "spark.ui.showConsoleProgress": "false",
        **cluster.options.spark_conf,
    }
    _write(cluster.spark_conf_dir / "spark-defaults.conf", "".join(f"{k} {v}\n" for k, v in conf.items()))


def _write_livy_conf(cluster: HdiCluster, port: int) -> None:
    whitelist = ",".join(str(p) for p in (cluster.upload_dir, *cluster.options.whitelist))
    text = string.Template(LIVY_CONF_TEMPLATE.read_text()).substitute(
        port=port, state_retain=cluster.options.state_retain, whitelist=whitelist
    )
    text += "".join(f"{k} = {v}\n" for k, v in cluster.options.livy_conf.items())
    _write(cluster.livy_conf_dir / "livy.conf", text)
    # Livy logs at INFO (every batch request, with its conf) to stderr, which goes to livy.log.
    _write(cluster.livy_conf_dir / "log4j.properties", "\n".join([
        "log4j.rootCategory=INFO, console",
        "log4j.appender.console=org.apache.log4j.ConsoleAppender",
        "log4j.appender.console.target=System.err",
        "log4j.appender.console.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.console.layout.ConversionPattern=%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n",
        "log4j.logger.org.eclipse.jetty=WARN",
        "",
    ]))


def _start_livy(cluster: HdiCluster, timeout: float) -> subprocess.Popen:
    java = str(_java_home() / "bin" / "java")
    classpath = os.pathsep.join([cluster.components.livy_classpath, str(cluster.livy_conf_dir), str(cluster.conf_dir)])
    env = cluster.spark_env()
    env.update(LIVY_CONF_DIR=str(cluster.livy_conf_dir), LIVY_LOG_DIR=str(cluster.workdir / "livy-logs"))
    tmp = cluster.workdir / "livy-tmp"
    tmp.mkdir(exist_ok=True)
    argv = [java, *LIGHT_JVM, "-Xmx256m", f"-Djava.io.tmpdir={tmp}", "-cp", classpath,
            "org.apache.livy.server.LivyServer"]
    with open(cluster.livy_log, "ab") as log:  # a restart appends: the log tells the whole story
        process = subprocess.Popen(argv, cwd=cluster.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _answers(cluster.livy_url + "/version"):
            return process
        time.sleep(0.25)
    exited = process.poll()
    _stop_group(process, 10.0)
    why = f"exited with code {exited}" if exited is not None else f"did not answer within {timeout:.0f} s"
    tail = cluster.livy_log_text()[-4000:]
    raise HdiClusterError(f"{LIVY} at {cluster.livy_url} did not start: it {why}. "
                          f"Its log ({cluster.livy_log}) ends:\n{tail}")


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the process that started it dies, so a test
    run killed outright leaves no YARN or Livy behind (Linux's PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the fixture's teardown still stops it


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _stop_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group this module created, SIGKILL it after ``grace`` seconds."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    _signal_group(process.pid, signal.SIGKILL)  # anything of the group that outlived its leader


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_containers(yarn_dir: Path) -> None:
    """Kill containers a stopped NodeManager left running. Each was started with setsid, so its
    pid (in the NodeManager's ``nmPrivate/.../CONTAINER.pid``) leads its process group; it is
    signalled only if that process still runs in this cluster's folder."""
    for pid_file in yarn_dir.glob("**/nmPrivate/**/*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except (OSError, ValueError):
            continue  # gone already, or the file was half-written
        if cwd.is_relative_to(yarn_dir.resolve()):
            _signal_group(pid, signal.SIGKILL)


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def hdi_cluster_options() -> HdiOptions:
    """Override (same name, session scope) to add settings to the shared cluster."""
    return HdiOptions()


@pytest.fixture(scope="session")
def hdi_cluster(tmp_path_factory: pytest.TempPathFactory, hdi_cluster_options: HdiOptions) -> Iterator[HdiCluster]:
    """One YARN and one Livy for the whole session; fails (never skips) if either cannot start."""
    try:
        cluster = start_hdi_cluster(tmp_path_factory.mktemp("hdi-cluster"), hdi_cluster_options)
    except (FetchError, HdiClusterError) as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        stop_hdi_cluster(cluster)
