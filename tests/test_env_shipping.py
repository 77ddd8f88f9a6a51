"""Issue 12, shipping: the run's Python dependencies reach the driver and the executors on the
local target and on a real Spark standalone cluster (tests/plugins/spark_cluster.py).

The environment (msgpack 1.0.8 with its C extension, tabulate 0.9.0), neither of which the test
process has, is built by ``shipped_env.build_environment`` and given to the real service
through ``shipped_env.give_environment``. The YARN (Livy) runs are in test_env_shipping_yarn.py.
"""
from __future__ import annotations

import os
import sys

import pytest
from helpers import cli_json, make_project, write
from shipped_env import JOB, PINS, build_environment, give_environment, job_result, run_in_process

from sparkjobs.runs import RunStatus
from sparkjobs.service import RunRequest, SparkJobs

NO_MASTER = "spark://127.0.0.1:1"  # the spark compute's until a test starts the real cluster
SHADOW = """
import json
from pyspark.sql import SparkSession

def where(_):
    import tabulate
    return tabulate.__file__

spark = SparkSession.builder.getOrCreate()
import tabulate
print("RESULT " + json.dumps({"driver": tabulate.__file__,
                              "executors": sorted(set(spark.sparkContext.parallelize(range(2), 2).map(where).collect()))}))
spark.stop()
"""


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    return build_environment(tmp_path_factory.mktemp("environment"))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("shipping")
    root = make_project(base / "proj", base / "share")
    write(root / "aml_config" / "spark.compute", f"""
        type: spark
        master: {NO_MASTER}
        nativeSharedDirectory: {base / "share"}/
        conf:
          spark.driver.host: 127.0.0.1
          spark.ui.enabled: false
          spark.executor.memory: 512m
          spark.executorEnv.PYTHONPATH: /opt/site-extra
        """)
    write(root / "aml_config" / "spark.runconfig", 'Target: spark\nArgumentVector: ["$file"]\n')
    write(root / "job.py", JOB)
    environ = {k: v for k, v in os.environ.items() if k not in ("SPARKJOBS_HISTORY", "AZURE_STORAGE_CONNECTION_STRING")}
    environ["SPARKJOBS_HOME"] = str(base / "home")
    # Workers are on this machine here; on a real cluster PYSPARK_PYTHON names the workers' Python.
    environ["PYSPARK_PYTHON"] = sys.executable
    return {"root": root, "env": environ, "base": base}


def _assert_shipped(result: dict, environment, executor_folder: str) -> None:
    """Both packages came from the environment: the executors' from ``executor_folder``, with
    msgpack's C extension loaded (its pure-Python fallback would hide a wrong interpreter)."""
    assert result["driver"]["msgpack"].startswith(f"{environment.unpacked}/"), result["driver"]
    assert result["driver"]["tabulate"].startswith(f"{environment.unpacked}/"), result["driver"]
    assert result["driver"]["version"] == [1, 0, 8]
    assert len(result["executors"]) == 3
    for row in result["executors"]:
        assert f"/{executor_folder}/msgpack/__init__.py" in row["msgpack"], row
        assert f"/{executor_folder}/tabulate/__init__.py" in row["tabulate"], row
        assert row["packer"] == "msgpack._cmsgpack", row
        assert row["roundtrip"][1] == "x" and row["table"].endswith("x")
    assert result["driver"]["pid"] not in {row["pid"] for row in result["executors"]}


@pytest.mark.spark
def test_a_requirements_file_runs_through_the_cli_with_its_packages_on_the_executors(tmp_path):
    """End to end: the build side resolves requirements.txt with pip, and the run ships it."""
    root = make_project(tmp_path / "proj", tmp_path / "share")
    write(root / "requirements.txt", "\n".join(PINS) + "\n")
    runconfig = root / "aml_config" / "local.runconfig"
    runconfig.write_text(runconfig.read_text() + "RequirementsFile: requirements.txt\n")
    write(root / "job.py", JOB)
    environ = {**os.environ, "SPARKJOBS_HOME": str(tmp_path / "home")}
    environ.pop("SPARKJOBS_HISTORY", None)
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(root), "job.py", env=environ)
    assert done.returncode == 0 and record["status"] == "completed", done.stderr[-4000:]
    assert record["environment"]["packages"] == list(PINS)
    result = job_result(done.stderr.splitlines())
    for row in (result["driver"], *result["executors"]):
        assert "/unpacked/msgpack/__init__.py" in row["msgpack"] and str(tmp_path / "home") in row["msgpack"], row
    assert all(row["packer"] == "msgpack._cmsgpack" for row in result["executors"])


def test_the_test_process_lacks_the_packages():
    for name in ("msgpack", "tabulate"):
        with pytest.raises(ImportError):
            __import__(name)


@pytest.mark.spark
def test_local_run_has_the_environment_for_driver_and_executors(project, environment, monkeypatch):
    give_environment(monkeypatch, environment)
    record, lines = run_in_process(project["root"], "local", "job.py", project["env"])
    assert record.status is RunStatus.COMPLETED, "\n".join(lines[-40:])
    # Local Spark's Python workers import from the same unpacked copy, through PYTHONPATH.
    _assert_shipped(job_result(lines), environment, environment.unpacked.name)


@pytest.mark.spark
def test_the_projects_own_module_wins_over_a_package_of_the_same_name(tmp_path, environment, monkeypatch):
    root = make_project(tmp_path / "proj", tmp_path / "share")
    write(root / "tabulate.py", "MINE = True\n")
    write(root / "shadow.py", SHADOW)
    environ = {**os.environ, "SPARKJOBS_HOME": str(tmp_path / "home")}
    environ.pop("SPARKJOBS_HISTORY", None)
    give_environment(monkeypatch, environment)
    record, lines = run_in_process(root, "local", "shadow.py", environ)
    assert record.status is RunStatus.COMPLETED, "\n".join(lines[-40:])
    result = job_result(lines)
    assert result["driver"].endswith("/snapshot/tabulate.py"), result
    assert all(path.endswith("/snapshot/tabulate.py") for path in result["executors"]), result


@pytest.mark.spark
def test_a_python_mismatch_fails_with_one_error_naming_both_versions(tmp_path, environment, project, monkeypatch):
    claimed = build_environment(environment.archive.parent, claimed="3.8")
    give_environment(monkeypatch, claimed)
    record, lines = run_in_process(project["root"], "local", "job.py", project["env"])
    assert record.status is RunStatus.FAILED and record.exit_code == 2, "\n".join(lines)
    said = [line for line in lines if "built for Python 3.8" in line]
    assert len(said) == 1, "\n".join(lines)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"the driver runs Python {here}" in said[0] and f"pythonVersion: \"{here}\"" in said[0]
    assert record.error is not None and said[0].endswith(record.error), record.error  # the record says it too
    assert not any("ImportError" in line or "Traceback" in line for line in lines), "\n".join(lines)
    assert not any(line.startswith("RESULT ") for line in lines)


def test_spark_target_puts_the_archive_in_spark_archives_and_keeps_the_users_pythonpath(project, environment, monkeypatch):
    give_environment(monkeypatch, environment)
    described = SparkJobs(project["env"]).describe_run(RunRequest(project["root"], "spark", "job.py"))
    argv = described["submit"]["argv"]
    confs = [argv[i + 1] for i, item in enumerate(argv) if item == "--conf"]
    assert f"spark.archives={environment.archive.resolve().as_uri()}#sparkjobs_env" in confs
    assert "spark.executorEnv.PYTHONPATH=/opt/site-extra:./sparkjobs_env" in confs


@pytest.mark.spark
def test_spark_cluster_executors_import_from_the_shipped_archive(project, environment, spark_cluster, monkeypatch):
    compute = project["root"] / "aml_config" / "spark.compute"
    compute.write_text(compute.read_text().replace(NO_MASTER, spark_cluster.master_url))
    give_environment(monkeypatch, environment)
    record, lines = run_in_process(project["root"], "spark", "job.py", project["env"])
    assert record.status is RunStatus.COMPLETED, "\n".join(lines[-40:])
    result = job_result(lines)
    # Each executor unpacked spark.archives in its own working folder, as ./sparkjobs_env.
    _assert_shipped(result, environment, "sparkjobs_env")
    assert not any(str(environment.unpacked) in row["msgpack"] for row in result["executors"])


def test_the_launch_spec_refuses_a_malformed_environment():
    from sparkjobs.bootstrap.spec import BootstrapError, LaunchSpec

    base = {"version": 1, "run_id": "r", "script": "job.py"}
    spec = LaunchSpec.from_json({**base, "environment": {"path": "sparkjobs_env", "python": "3.11", "digest": "ab"}})
    assert spec.environment is not None and spec.environment.python == "3.11"
    assert LaunchSpec.from_json({**base, "environment": None}).environment is None
    for bad, said in (({"path": "x", "python": "3.11"}, 'environment must be null or {"path"'),
                      ({"path": "x", "python": "3", "digest": "ab"}, "environment.python must be a major.minor"),
                      ("sparkjobs_env", 'environment must be null or {"path"')):
        with pytest.raises(BootstrapError, match="The launch spec is invalid") as raised:
            LaunchSpec.from_json({**base, "environment": bad})
        assert said in str(raised.value)


def test_env_build_uploads_to_the_cluster_storage_once_and_a_dry_run_sees_it_there(tmp_path):
    """``env build -c`` a cluster compute puts the environment where its runs read it; no Livy is
    asked (the compute's ``storage`` is a folder here, so nothing but pip is reached)."""
    root = make_project(tmp_path / "proj", tmp_path / "share")
    store = tmp_path / "cluster-store"
    write(root / "aml_config" / "hdi.compute", f"type: cluster\nlivy: http://127.0.0.1:1\nstorage: {store.as_uri()}\n")
    write(root / "aml_config" / "hdi.runconfig", 'Target: hdi\nFramework: PySpark\nArgumentVector: ["$file"]\n'
                                                 "RequirementsFile: requirements.txt\n")
    write(root / "requirements.txt", "\n".join(PINS) + "\n")
    write(root / "job.py", JOB)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKJOBS_", "AZURE_STORAGE"))}
    environ["SPARKJOBS_HOME"] = str(tmp_path / "home")
    done, first = cli_json("env", "build", "-c", "hdi", "--json", "--project", str(root), env=environ)
    assert done.returncode == 0, done.stderr
    digest = first["digest"]
    archive = store / "environments" / digest / "archive.tar.gz"
    assert first["shipped_bytes"] > archive.stat().st_size > 0
    assert (store / "environments" / digest / "COMPLETE").is_file()
    done, again = cli_json("env", "build", "-c", "hdi", "--json", "--project", str(root), env=environ)
    assert done.returncode == 0 and again["digest"] == digest and again["shipped_bytes"] == 0, done.stderr
    done, described = cli_json("run", "-c", "hdi", "--dry-run", "--project", str(root), "job.py", env=environ)
    assert done.returncode == 0, done.stderr
    request = described["submit"]["request"]
    assert request["archives"] == [f"{archive.as_uri()}#sparkjobs_env"]
    assert request["conf"]["spark.yarn.appMasterEnv.PYTHONPATH"] == "./sparkjobs_env"
    assert request["conf"]["spark.executorEnv.PYTHONPATH"] == "./sparkjobs_env"
    assert described["submit"]["launch_spec"]["environment"] == {"path": "sparkjobs_env", "python": first["python_version"],
                                                                 "digest": digest}
    shipped = [u for u in described["submit"]["uploads"] if u["what"] == "python environment"]
    assert shipped == [{"what": "python environment", "to": archive.as_uri(), "bytes": archive.stat().st_size,
                        "already_stored": True}]
