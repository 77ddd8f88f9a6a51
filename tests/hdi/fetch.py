"""Fetch the real parts of the HDInsight tests into tests/.cache, once; later runs fetch nothing.

    python3 tests/hdi/fetch.py      # prints what it fetched, or that each part was cached

- **Spark 3.5.3** for the cluster side: ``pip install --target`` of pyspark 3.5.3, whose Hadoop
  is 3.3.4 and Scala 2.12. HDInsight 5.1 runs Spark 3.3 on Hadoop 3.3, a line that still has
  the wasb driver. The repository's own interpreter keeps its pyspark 4.
- **YARN**: Hadoop 3.3.4's ``hadoop-client-minicluster`` from Maven Central (tests/hdi/yarn/pom.xml)
  and ``MiniYarn.java``, compiled here with javac, which runs one ResourceManager and one NodeManager.
- **Apache Livy**'s server and its run-time jars from Maven Central (tests/hdi/livy/pom.xml).

Each part is built in a temporary folder and renamed into place, with a ``COMPLETE`` file that
records what it was built from, so an interrupted fetch leaves nothing half-made and a changed
pin or source is fetched again. Maven keeps its downloads in ~/.m2, pip in its own cache.
The plugin tests/plugins/hdi_cluster.py calls :func:`fetch_all` too, and fails its tests
(never skips them) with the :class:`FetchError` naming the part that could not be had.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CACHE",
    "HADOOP_VERSION",
    "LIVY_VERSION",
    "SPARK_VERSION",
    "Components",
    "FetchError",
    "fetch_all",
    "fetch_livy",
    "fetch_spark",
    "fetch_yarn",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = REPO / "tests" / ".cache"
SPARK_VERSION = "3.5.3"
HADOOP_VERSION = "3.3.4"  # the Hadoop inside pyspark 3.5.3 (jars/hadoop-client-api-3.3.4.jar)
LIVY_VERSION = "0.7.1-incubating"  # the newest livy-server on Maven Central here; see livy/pom.xml
MARKER = "COMPLETE"
FETCH_HINT = "python3 tests/hdi/fetch.py"

Log = Callable[[str], None]


class FetchError(RuntimeError):
    """A part of the test cluster could not be fetched or built; the message names it and why."""


@dataclass(frozen=True)
class Components:
    spark_pythonpath: Path  # the pip --target folder: pyspark 3.5.3 and py4j
    spark_home: Path  # its pyspark folder, a Spark distribution (bin/, jars/, python/lib/)
    yarn_home: Path  # jars/ (the minicluster) and classes/ (MiniYarn)
    livy_home: Path  # jars/ (livy-server and its dependencies)

    @property
    def yarn_classpath(self) -> str:
        return os.pathsep.join([str(self.yarn_home / "classes"), str(self.yarn_home / "jars" / "*")])

    @property
    def livy_classpath(self) -> str:
        return str(self.livy_home / "jars" / "*")


def _digest(*parts: str | Path) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.read_bytes() if isinstance(part, Path) else part.encode())
        sha.update(b"\0")
    return sha.hexdigest()


def _complete(folder: Path, digest: str) -> bool:
    marker = folder / MARKER
    return marker.is_file() and marker.read_text().strip() == digest


def _run(component: str, argv: list[str], cwd: Path = REPO) -> None:
    try:
        done = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError as exc:
        raise FetchError(f"{component}: {argv[0]} is not installed ({exc.strerror}).") from exc
    except subprocess.TimeoutExpired as exc:
        raise FetchError(f"{component}: '{' '.join(argv[:4])} ...' did not finish in {exc.timeout:.0f} s.") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-3000:]
        raise FetchError(f"{component}: '{' '.join(argv[:4])} ...' failed with exit code {done.returncode}:\n{output}")


def _build(component: str, final: Path, digest: str, make: Callable[[Path], None]) -> None:
    """Make the part in a fresh sibling folder, mark it complete, then swap it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        make(tmp)
        (tmp / MARKER).write_text(digest + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _java_tool(name: str, component: str) -> str:
    """javac/java of JAVA_HOME when it is set (as spark-submit picks), else from PATH."""
    home = os.environ.get("JAVA_HOME")
    tool = str(Path(home) / "bin" / name) if home else shutil.which(name)
    if not tool or not Path(tool).is_file():
        where = f"in JAVA_HOME ({home})" if home else "on PATH"
        raise FetchError(f"{component}: {name} (a Java 17 JDK) was not found {where}.")
    return tool


def _mvn(component: str) -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError(f"{component}: Maven (mvn) is not on PATH; install it (apt-get install maven).")
    return mvn


def _copy_dependencies(component: str, pom: Path, jars: Path) -> None:
    _run(component, [_mvn(component), "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
                     "dependency:copy-dependencies", f"-Djars.dir={jars}"])


def fetch_spark(log: Log = print) -> tuple[Path, Path]:
    """pyspark 3.5.3 from PyPI into tests/.cache/spark-3.5.3; (pythonpath, SPARK_HOME)."""
    component = f"Spark {SPARK_VERSION} (pyspark from PyPI)"
    final = CACHE / f"spark-{SPARK_VERSION}"
    home = final / "pyspark"
    digest = _digest(f"pyspark=={SPARK_VERSION}")
    if not _complete(final, digest) and _usable_spark(home):
        (final / MARKER).write_text(digest + "\n")  # installed by an earlier script without a marker
    if _complete(final, digest):
        log(f"cached  {component}: {home}")
        return final, home

    def make(tmp: Path) -> None:
        _run(component, [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                         "--no-warn-script-location", "--target", str(tmp), f"pyspark=={SPARK_VERSION}"])
        if not _usable_spark(tmp / "pyspark"):
            raise FetchError(f"{component}: pip installed pyspark {SPARK_VERSION} without bin/spark-submit, "
                             f"jars/ or python/lib/pyspark.zip.")

    _build(component, final, digest, make)
    log(f"fetched {component}: {home}")
    return final, home


def _usable_spark(home: Path) -> bool:
    return (
        (home / "bin" / "spark-submit").is_file()
        and (home / "jars" / f"spark-core_2.12-{SPARK_VERSION}.jar").is_file()
        and (home / "python" / "lib" / "pyspark.zip").is_file()
    )


def fetch_yarn(log: Log = print) -> Path:
    """hadoop-client-minicluster and MiniYarn, compiled, into tests/.cache/yarn-3.3.4."""
    component = f"YARN (Hadoop {HADOOP_VERSION} MiniYARNCluster from Maven Central)"
    final = CACHE / f"yarn-{HADOOP_VERSION}"
    sources = HERE / "yarn"
    digest = _digest(sources / "pom.xml", sources / "MiniYarn.java", sources / "log4j.properties")
    if _complete(final, digest):
        log(f"cached  {component}: {final}")
        return final
    javac = _java_tool("javac", component)

    def make(tmp: Path) -> None:
        _copy_dependencies(component, sources / "pom.xml", tmp / "jars")
        _run(component, [javac, "-nowarn", "-d", str(tmp / "classes"), "-cp", str(tmp / "jars" / "*"),
                         str(sources / "MiniYarn.java")])
        shutil.copy(sources / "log4j.properties", tmp / "classes" / "log4j.properties")

    _build(component, final, digest, make)
    log(f"fetched {component}: {final}")
    return final


def fetch_livy(log: Log = print) -> Path:
    """livy-server and its run-time jars into tests/.cache/livy-0.7.1-incubating/jars."""
    component = f"Apache Livy {LIVY_VERSION} (livy-server from Maven Central)"
    final = CACHE / f"livy-{LIVY_VERSION}"
    pom = HERE / "livy" / "pom.xml"
    digest = _digest(pom)
    if _complete(final, digest):
        log(f"cached  {component}: {final}")
        return final

    def make(tmp: Path) -> None:
        _copy_dependencies(component, pom, tmp / "jars")
        if not (tmp / "jars" / f"livy-server-{LIVY_VERSION}.jar").is_file():
            raise FetchError(f"{component}: Maven did not bring livy-server-{LIVY_VERSION}.jar.")

    _build(component, final, digest, make)
    log(f"fetched {component}: {final}")
    return final


def fetch_all(log: Log = print) -> Components:
    """Every part, fetched or built if it is not in the cache yet; raises :class:`FetchError`."""
    pythonpath, spark_home = fetch_spark(log)
    return Components(pythonpath, spark_home, fetch_yarn(log), fetch_livy(log))


def main() -> int:
    try:
        fetch_all(lambda line: print(line, flush=True))
    except FetchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
