"""``SparkDependenciesFile`` packages resolved for real from Maven Central by spark-submit's Ivy:
``--packages`` on ``-c local`` and on a ``spark`` target (the standalone cluster fixture), and
``spark.jars.packages`` through real Apache Livy in yarn-cluster mode (``hdi_cluster``).

The package is org.jsoup:jsoup, pinned: one small pure-Java jar with no dependencies of its
own, and on none of the class paths here (neither pyspark 4's jars, nor the cluster's
pyspark 3.5.3 or YARN's). The job calls it through py4j on the driver, and through Spark SQL's
``reflect`` on the executors, which load the jar Spark shipped them.

Ivy's default cache (~/.ivy2*) is used, as users have it: a second run downloads nothing, and
the first downloads what it needs, so no test depends on what is cached. A package that does
not exist costs no job: spark-submit stops at resolution.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli, cli_json, make_project, write
from plugins.hdi_cluster import HdiCluster

from sparkjobs.config import load_run_settings
from sparkjobs.packages import PackageResolution, unresolved_coordinates

JSOUP = "org.jsoup:jsoup:1.17.2"
MISSING = "com.example.sparkjobs:no-such-artifact:0.0.1"  # nobody publishes under example.com
MARKER = "PACKAGE-RESULT"
JOB = f"""
import json
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
# py4j on the driver: a JavaPackage (not callable) unless the jar is on the driver's class path.
text = spark.sparkContext._jvm.org.jsoup.Jsoup.parse("<p>Hello <b>jsoup</b></p>").text()
# reflect() runs on the executors, which load the jar Spark shipped them.
rows = spark.range(2, numPartitions=2).selectExpr(
    "reflect('org.jsoup.parser.Parser', 'unescapeEntities', concat('a&amp;', id), false) AS t").collect()
print("{MARKER}", json.dumps({{"driver": text, "executors": sorted(r.t for r in rows)}}))
spark.stop()
"""
EXPECTED = {"driver": "Hello jsoup", "executors": ["a&0", "a&1"]}
# What spark-submit 4.x printed here for a package that does not exist (recorded; trimmed).
IVY_FAILURE = """\
	found org.jsoup#jsoup;1.17.2 in central
		module not found: com.example.sparkjobs#no-such-artifact;0.0.1
	==== central: tried
	  https://repo1.maven.org/maven2/com/example/sparkjobs/no-such-artifact/0.0.1/no-such-artifact-0.0.1.pom
		::          UNRESOLVED DEPENDENCIES         ::
		:: com.example.sparkjobs#no-such-artifact;0.0.1: not found
Exception in thread "main" java.lang.RuntimeException: [unresolved dependency: com.example.sparkjobs#no-such-artifact;0.0.1: not found]
	at org.apache.spark.util.MavenUtils$.resolveMavenCoordinates(MavenUtils.scala:539)
""".splitlines()
LIVY_WAIT = 900  # seconds; a bound, not an expectation (one batch takes 36-93 s here)


def _dependencies(project: Path, packages: list[str]) -> None:
    listed = "".join(f"  - {p}\n" for p in packages)
    write(project / "aml_config" / "spark_dependencies.yml", f"packages:\n{listed}" if packages else "packages: []\n")


def _runconfig(project: Path, name: str, target: str, deps: str) -> None:
    write(project / "aml_config" / f"{name}.runconfig",
          f'Target: {target}\nArgumentVector: ["$file"]\nSparkDependenciesFile: aml_config/{deps}\n')


def _project(base: Path) -> tuple[Path, dict[str, str]]:
    """One project: runconfig 'local'/'spark'/'hdi' use jsoup, 'missing-*' a package that does not exist."""
    project = make_project(base / "proj", base / "share")
    write(project / "aml_config" / "with_jsoup.yml", f"packages:\n  - {JSOUP}\n")
    write(project / "aml_config" / "with_missing.yml", f"packages:\n  - {JSOUP}\n  - {MISSING}\n")
    write(project / "aml_config" / "only_missing.yml", f"packages:\n  - {MISSING}\n")
    write(project / "job.py", JOB)
    environ = dict(os.environ, SPARKJOBS_HOME=str(base / "home"), PYSPARK_PYTHON=sys.executable)
    return project, environ


def _record(env: dict[str, str], project: Path, run_id: str) -> dict:
    done, record = cli_json("runs", "show", run_id, "--json", "--project", str(project), env=env)
    assert done.returncode == 0, done.stderr
    return record


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER + " ")]
    assert lines, stdout[-3000:]
    return json.loads(lines[-1].split(" ", 1)[1])


def _assert_names_the_missing_package(done: subprocess.CompletedProcess, env: dict[str, str], project: Path,
                                      machine: str, deps: str = "with_missing.yml") -> None:
    """Exit 1, one summary naming the package, where it was resolved and the file; recorded."""
    assert done.returncode == 1, done.stderr[-3000:]
    summary = [line for line in done.stderr.splitlines() if "could not resolve" in line]
    assert len(summary) == 1, done.stderr[-3000:]
    line = summary[0]
    assert line.startswith("sparkjobs: Run ") and " failed. " in line, line
    assert f"spark-submit on {machine} could not resolve the package {MISSING}" in line, line
    assert f"aml_config/{deps}" in line and JSOUP not in line, line
    assert "Traceback" not in done.stderr
    run_id = line.split()[2].rstrip(".")
    record = _record(env, project, run_id)
    assert record["status"] == "failed" and MISSING in record["error"], record


# ---- the dependencies file's shapes (no Spark) ----------------------------------------------------


def test_workbench_package_and_repository_mappings_are_accepted_next_to_strings(tmp_path, isolated_home):
    project = make_project(tmp_path / "proj", tmp_path / "share")
    write(project / "aml_config" / "spark_dependencies.yml", """
        packages:
          - group: org.jsoup
            artifact: jsoup
            version: "1.17.2"
          - org.example:lib:1.0
        repositories:
          - url: https://repo.example/maven
          - https://other.example/maven
        """)
    settings = load_run_settings(project, "local", {})
    assert settings.dependencies.packages == (JSOUP, "org.example:lib:1.0")
    assert settings.dependencies.repositories == ("https://repo.example/maven", "https://other.example/maven")
    assert settings.dependencies.file == "aml_config/spark_dependencies.yml"
    write(project / "job.py", "print(1)\n")
    done, plan = cli_json("run", "-c", "local", "--dry-run", "--project", str(project), "job.py")
    argv = plan["submit"]["argv"]
    assert argv[argv.index("--packages") + 1] == f"{JSOUP},org.example:lib:1.0"
    assert argv[argv.index("--repositories") + 1] == "https://repo.example/maven,https://other.example/maven"


@pytest.mark.parametrize("text, said", [
    ("packages:\n  - {group: org.jsoup, artifact: jsoup}\n", "lacks version"),
    ("packages:\n  - {group: org.jsoup, artifact: jsoup, version: 1.10}\n", "which YAML read as a number"),
    ("packages:\n  - {group: a, artifact: b, version: '1', scope: x}\n", "has unknown keys scope"),
    ("packages:\n  - org.jsoup:jsoup\n", "is not a Maven coordinate"),
    ("repositories:\n  - {url: https://repo.example/maven, name: x}\n", "mapping with one key, url"),
])
def test_a_malformed_package_or_repository_is_refused_with_exit_2(tmp_path, isolated_home, text, said):
    project = make_project(tmp_path / "proj", tmp_path / "share")
    write(project / "aml_config" / "spark_dependencies.yml", text)
    write(project / "job.py", "print(1)\n")
    done = cli("run", "-c", "local", "--project", str(project), "job.py")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("Error: ") and said in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (isolated_home / "runs").exists() or not any((isolated_home / "runs").iterdir())


def test_ivys_unresolved_dependency_becomes_one_sentence_naming_the_package():
    assert unresolved_coordinates(IVY_FAILURE) == (MISSING,)
    resolution = PackageResolution((JSOUP, MISSING), "aml_config/deps.yml", "this machine")
    said = resolution.explain(IVY_FAILURE)
    assert said is not None and said.startswith(
        f"spark-submit on this machine could not resolve the package {MISSING} (from 'packages' in aml_config/deps.yml)")
    assert JSOUP not in said and said.endswith("can reach those repositories.")
    # A dependency of a listed package is named as such; several are named together.
    both = PackageResolution((JSOUP,), "deps.yml", "the cluster's Livy server").explain(
        ["java.lang.RuntimeException: [unresolved dependency: a.b#c;1: not found, unresolved dependency: d#e;2.0: not found]"])
    assert both is not None and "could not resolve a.b:c:1 and d:e:2.0, which the listed packages need" in both
    assert resolution.explain(["found org.jsoup#jsoup;1.17.2 in central"]) is None


def test_ivys_cache_race_between_two_submissions_is_explained():
    # Recorded from Livy's log when two batches resolved jsoup into an empty ~/.ivy2 at once.
    lines = [
        "downloading https://repo1.maven.org/maven2/org/jsoup/jsoup/1.17.2/jsoup-1.17.2.jar ...",
        'Exception in thread "main" java.lang.RuntimeException: problem during retrieve of org.apache.spark#'
        "spark-submit-parent-88105b73-917c-4be5-89cc-9e93a709d550: java.io.FileNotFoundException: "
        "/root/.ivy2/cache/org.jsoup/jsoup/jars/jsoup-1.17.2.jar (No such file or directory)",
    ]
    said = PackageResolution((JSOUP,), "aml_config/deps.yml", "the cluster's Livy server").explain(lines)
    assert said is not None and said.startswith("spark-submit on the cluster's Livy server found the packages")
    assert "/root/.ivy2/cache/org.jsoup/jsoup/jars/jsoup-1.17.2.jar" in said and said.endswith("run again.")


# ---- -c local: spark-submit --packages on this machine ----------------------------------------------


@pytest.fixture(scope="module")
def local_project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    project, environ = _project(tmp_path_factory.mktemp("packages-local"))
    _runconfig(project, "jsoup", "local", "with_jsoup.yml")
    _runconfig(project, "missing", "local", "with_missing.yml")
    return project, environ


@pytest.mark.spark
def test_local_run_calls_a_package_resolved_from_maven_central(local_project):
    project, env = local_project
    done = cli("run", "-c", "jsoup", "--project", str(project), "job.py", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _result(done.stdout) == EXPECTED


@pytest.mark.spark
def test_local_run_with_a_missing_package_fails_naming_it(local_project):
    project, env = local_project
    done = cli("run", "-c", "missing", "--project", str(project), "job.py", env=env)
    _assert_names_the_missing_package(done, env, project, "this machine")


# ---- a spark target: --packages, the driver here and an executor on the standalone worker -----------


@pytest.fixture(scope="module")
def spark_project(tmp_path_factory, spark_cluster) -> tuple[Path, dict[str, str]]:
    project, environ = _project(tmp_path_factory.mktemp("packages-spark"))
    write(project / "aml_config" / "standalone.compute", f"""
        type: spark
        master: {spark_cluster.master_url}
        nativeSharedDirectory: {project.parent / "share"}/
        conf:
          spark.driver.host: 127.0.0.1
          spark.ui.enabled: false
          spark.executor.memory: 512m
        """)
    _runconfig(project, "jsoup", "standalone", "with_jsoup.yml")
    _runconfig(project, "missing", "standalone", "with_missing.yml")
    return project, environ


@pytest.mark.spark
def test_spark_target_calls_a_package_on_the_driver_and_the_executors(spark_project):
    project, env = spark_project
    done = cli("run", "-c", "jsoup", "--project", str(project), "job.py", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _result(done.stdout) == EXPECTED


@pytest.mark.spark
def test_spark_target_with_a_missing_package_fails_naming_it(spark_project):
    project, env = spark_project
    done = cli("run", "-c", "missing", "--project", str(project), "job.py", env=env)
    _assert_names_the_missing_package(done, env, project, "this machine")


# ---- a cluster target: spark.jars.packages, resolved by spark-submit on Livy's host -----------------


@pytest.fixture(scope="module")
def livy_runs(tmp_path_factory, hdi_cluster: HdiCluster) -> Iterator[dict]:
    """Both Livy runs at once: the one that resolves jsoup becomes a YARN application, the one
    with a missing package dies in spark-submit before YARN hears of it."""
    project, environ = _project(tmp_path_factory.mktemp("packages-livy"))
    # The cluster reads the run's files from a folder in Livy's whitelist (no Azure needed here).
    store = hdi_cluster.upload_dir / f"packages-{project.parent.name}"
    write(project / "aml_config" / "hdi.compute", f"""
        type: cluster
        livy: {hdi_cluster.livy_url}
        storage: {store.as_uri()}
        """)
    _runconfig(project, "jsoup", "hdi", "with_jsoup.yml")
    # Not jsoup as well: two spark-submits downloading one jar into one empty Ivy cache at once
    # race (one finds the jar gone; test_ivys_cache_race_between_two_submissions_is_explained).
    _runconfig(project, "missing", "hdi", "only_missing.yml")
    environ["SPARKJOBS_LIVY_POLL_SECONDS"] = "2"
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "sparkjobs.cli", "run", "-c", name, "--project", str(project), "job.py"],
            env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in ("missing", "jsoup")
    }
    try:
        done = {}
        for name, process in started.items():
            out, err = process.communicate(timeout=LIVY_WAIT)
            done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        yield {"project": project, "env": environ, "done": done, "cluster": hdi_cluster}
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()


def _livy_why(livy_runs: dict, name: str) -> str:
    done = livy_runs["done"][name]
    return f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{livy_runs['cluster'].diagnostics()}"


@pytest.mark.spark
@pytest.mark.timeout(LIVY_WAIT + 300)
def test_livy_batch_calls_a_package_given_as_spark_jars_packages(livy_runs):
    done = livy_runs["done"]["jsoup"]
    assert done.returncode == 0, _livy_why(livy_runs, "jsoup")
    assert _result(done.stdout) == EXPECTED  # from the driver log, written in the YARN container
    # Livy received the package as conf (it has no packages field) and gave it to spark-submit.
    assert f"'--conf' 'spark.jars.packages={JSOUP}'" in livy_runs["cluster"].livy_log_text()


@pytest.mark.spark
@pytest.mark.timeout(LIVY_WAIT + 300)
def test_livy_batch_with_a_missing_package_fails_naming_it(livy_runs):
    done = livy_runs["done"]["missing"]
    _assert_names_the_missing_package(done, livy_runs["env"], livy_runs["project"], "the cluster's Livy server",
                                      "only_missing.yml")
    assert "sparkjobs bootstrap" not in done.stdout  # it never ran: spark-submit stopped at resolution
