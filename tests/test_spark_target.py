"""The spark target (``type: spark``) end to end through the real CLI, against a real Spark
standalone master and worker on 127.0.0.1 (tests/plugins/spark_cluster.py).

Two cluster jobs, each shared by several assertions: one with local outputs and a local shared
folder, one with ``storage: file:///...``. The configuration and zip tests start no Spark.
"""
from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import cli, cli_json, make_project, write

from sparkjobs.snapshot import build_snapshot, materialise
from sparkjobs.targets.spark import write_snapshot_zip

JOB = """
import json, os
from pyspark.sql import SparkSession
from sparkjobs import context

def square_where(x):
    import mylib.mathutil  # a project module, importable on the executor only through --py-files
    return mylib.mathutil.square(x), mylib.mathutil.__file__, os.getpid()

spark = SparkSession.builder.getOrCreate()
results = spark.sparkContext.parallelize(range(6), 2).map(square_where).collect()
shared = context.shared_path()
counter = shared + "counter.txt"
previous = open(counter).read() if os.path.exists(counter) else "0"
with open(counter, "w") as f:
    f.write(str(int(previous) + 1))
# executors write into the shared folder; the driver reads it back
spark.createDataFrame([(r[0],) for r in results], "n long").write.mode("overwrite").parquet(shared + "squares")
back = sorted(row.n for row in spark.read.parquet(shared + "squares").collect())
result = {
    "squares": [r[0] for r in results],
    "module_files": sorted({r[1] for r in results}),
    "executor_pids": sorted({r[2] for r in results}),
    "driver_pid": os.getpid(),
    "read_back": back,
    "previous": previous,
    "outputs": context.outputs_path(),
    "shared": shared,
}
with open(context.outputs_path("result.json"), "w") as f:
    json.dump(result, f)
print("RESULT", json.dumps(result))
spark.stop()
"""

STORED_JOB = """
import json, os
from pyspark.sql import SparkSession
from sparkjobs import context

spark = SparkSession.builder.getOrCreate()
spark.range(4).write.json(context.outputs_path("numbers"))  # executors write to the storage URI
os.makedirs("outputs", exist_ok=True)
with open("outputs/metrics.json", "w") as f:  # plain Python; the bootstrap copies it
    json.dump({"outputs": context.outputs_path(), "shared": context.shared_path()}, f)
print("OUTPUTS", context.outputs_path())
spark.stop()
"""


def _spark_config(project: Path, name: str, master: str, extra: str = "") -> None:
    write(
        project / "aml_config" / f"{name}.compute",
        f"""
        type: spark
        master: {master}
        nativeSharedDirectory: {project.parent / "share"}/
        conf:
          spark.driver.host: 127.0.0.1
          spark.ui.enabled: false
          spark.executor.memory: 512m
        """ + extra,
    )
    write(project / "aml_config" / f"{name}.runconfig", f'Target: {name}\nArgumentVector: ["$file"]\n')


def _project(base: Path, master: str) -> tuple[Path, dict[str, str]]:
    project = make_project(base / "proj", base / "share")
    _spark_config(project, "spark", master)
    _spark_config(project, "stored", master, f"storage: file://{base / 'store'}\n")
    _spark_config(project, "clustermode", master, "deployMode: cluster\n")
    write(project / "mylib" / "__init__.py", "")
    write(project / "mylib" / "mathutil.py", "def square(x):\n    return x * x\n")
    write(project / "job.py", JOB)
    write(project / "stored_job.py", STORED_JOB)
    environ = dict(os.environ)
    environ["SPARKJOBS_HOME"] = str(base / "home")
    # Workers are on this machine here; on a real cluster PYSPARK_PYTHON names the workers' Python.
    environ["PYSPARK_PYTHON"] = sys.executable
    for name in ("SPARKJOBS_HISTORY", "AZURE_STORAGE_CONNECTION_STRING"):
        environ.pop(name, None)
    return project, environ


@pytest.fixture(scope="module")
def on_cluster(tmp_path_factory, spark_cluster):
    base = tmp_path_factory.mktemp("spark-target")
    project, environ = _project(base, spark_cluster.master_url)
    return {"base": base, "project": project, "env": environ, "home": base / "home", "cluster": spark_cluster}


@pytest.fixture
def offline(tmp_path):
    """A project whose master nothing listens on: for what must not reach Spark."""
    project, environ = _project(tmp_path, "spark://127.0.0.1:7077")
    return {"base": tmp_path, "project": project, "env": environ, "home": tmp_path / "home"}


@pytest.fixture(scope="module")
def plain_run(on_cluster):
    done, record = cli_json("run", "-c", "spark", "--json", "--project", str(on_cluster["project"]), "job.py", env=on_cluster["env"])
    assert done.returncode == 0, done.stderr
    return done, record


@pytest.fixture(scope="module")
def stored_run(on_cluster):
    done, record = cli_json("run", "-c", "stored", "--json", "--project", str(on_cluster["project"]), "stored_job.py", env=on_cluster["env"])
    assert done.returncode == 0, done.stderr
    return done, record


# ---- without storage: local outputs and shared folder ------------------------------------------


@pytest.mark.spark
def test_cluster_run_is_recorded_with_artifacts(plain_run, on_cluster):
    record = plain_run[1]
    assert record["status"] == "completed" and record["exit_code"] == 0
    assert record["target"] == "spark" and record["details"]["master"] == on_cluster["cluster"].master_url
    assert [a["path"] for a in record["artifacts"]] == ["outputs/result.json"]
    stored = on_cluster["home"] / "runs" / record["id"] / "outputs" / "result.json"
    result = json.loads(stored.read_text())
    assert result["squares"] == [0, 1, 4, 9, 16, 25]
    assert not (on_cluster["home"] / "work" / record["id"]).exists()


@pytest.mark.spark
def test_executors_import_project_modules_from_the_py_files_zip(plain_run, on_cluster):
    result = json.loads((on_cluster["home"] / "runs" / plain_run[1]["id"] / "outputs" / "result.json").read_text())
    assert result["module_files"], result
    for path in result["module_files"]:  # .../snapshot-<digest>.zip/mylib/mathutil.py
        assert f"snapshot-{plain_run[1]['snapshot'][:16]}.zip" in path and path.endswith("mylib/mathutil.py"), path
    assert result["driver_pid"] not in result["executor_pids"]


@pytest.mark.spark
def test_shared_folder_is_the_native_shared_directory(plain_run, on_cluster):
    result = json.loads((on_cluster["home"] / "runs" / plain_run[1]["id"] / "outputs" / "result.json").read_text())
    shared = on_cluster["base"] / "share" / "ws" / "demo"
    assert result["shared"] == f"{shared}/" and result["outputs"].endswith("/snapshot/outputs/")
    assert result["read_back"] == [0, 1, 4, 9, 16, 25] and result["previous"] == "0"
    assert (shared / "counter.txt").read_text() == "1"
    assert list((shared / "squares").glob("part-*.parquet"))  # written by the executors


@pytest.mark.spark
def test_master_lists_the_completed_application(plain_run, on_cluster):
    app = on_cluster["cluster"].completed_app(f"sparkjobs-{plain_run[1]['id']}")
    assert app["state"] == "FINISHED" and app["cores"] == 1


# ---- with storage: file:// URIs and outputs in the store ---------------------------------------


@pytest.mark.spark
def test_storage_run_gives_the_job_uris_and_keeps_outputs_in_the_store(stored_run, on_cluster):
    done, record = stored_run
    store = on_cluster["base"] / "store"
    outputs = store / "runs" / record["id"] / "outputs"
    printed = next(line for line in done.stderr.splitlines() if line.startswith("OUTPUTS "))[len("OUTPUTS ") :]
    assert printed == f"{outputs.as_uri()}/"
    metrics = json.loads((outputs / "metrics.json").read_text())
    assert metrics == {"outputs": f"{outputs.as_uri()}/", "shared": f"{(store / 'shared' / 'ws' / 'demo').as_uri()}/"}
    assert (outputs / "numbers" / "_SUCCESS").exists()
    assert (store / "runs" / record["id"] / "driver.log").exists()  # sent there by the bootstrap
    assert not (on_cluster["project"] / "outputs").exists()


@pytest.mark.spark
def test_storage_outputs_are_listed_as_artifacts(stored_run, on_cluster):
    record = stored_run[1]
    assert record["status"] == "completed" and record["details"]["master"] == on_cluster["cluster"].master_url
    paths = {a["path"] for a in record["artifacts"]}
    assert "outputs/metrics.json" in paths and "outputs/numbers/_SUCCESS" in paths
    assert any(p.startswith("outputs/numbers/part-") and p.endswith(".json") for p in paths), paths
    copied = on_cluster["home"] / "runs" / record["id"] / "outputs" / "metrics.json"  # in the run history
    assert json.loads(copied.read_text())["outputs"].startswith("file://")


# ---- no Spark ----------------------------------------------------------------------------------


def test_cluster_deploy_mode_is_refused_before_anything_starts(offline):
    done = cli("run", "-c", "clustermode", "--project", str(offline["project"]), "job.py", env=offline["env"])
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and errors[0].startswith("Error:"), done.stderr
    assert "clustermode.compute" in errors[0] and "deployMode" in errors[0]
    assert "does not support cluster deploy mode for Python applications on standalone clusters" in errors[0]
    assert "Traceback" not in done.stderr
    assert not (offline["home"] / "runs").exists()


def test_dry_run_shows_client_mode_and_the_py_files(offline):
    done, plan = cli_json("run", "--dry-run", "--json", "-c", "stored", "--project", str(offline["project"]), "stored_job.py", env=offline["env"])
    assert done.returncode == 0, done.stderr
    argv = plan["submit"]["argv"]
    assert argv[argv.index("--master") + 1] == "spark://127.0.0.1:7077"
    assert argv[argv.index("--deploy-mode") + 1] == "client"
    py_files = argv[argv.index("--py-files") + 1].split(",")
    assert [Path(p).name for p in py_files] == [f"snapshot-{plan['snapshot']['digest'][:16]}.zip", "sparkjobs-runtime.zip"]
    assert plan["env"]["SPARKJOBS_OUTPUTS"] == f"{(offline['base'] / 'store' / 'runs' / plan['run_id'] / 'outputs').as_uri()}/"
    assert plan["hadoop_secrets"] == {}


def test_azure_storage_key_is_a_run_time_hadoop_secret_never_conf(offline):
    compute = offline["project"] / "aml_config" / "stored.compute"
    compute.write_text(compute.read_text().replace(f"file://{offline['base'] / 'store'}", "abfss://runs@acct1.dfs.core.windows.net/team"))
    key = "c2VjcmV0LWtleS1mb3ItdGVzdHM="
    environ = {**offline["env"], "AZURE_STORAGE_ACCOUNT": "acct1", "AZURE_STORAGE_KEY": key}
    done, plan = cli_json("run", "--dry-run", "--json", "-c", "stored", "--project", str(offline["project"]), "stored_job.py", env=environ)
    assert done.returncode == 0, done.stderr
    assert plan["hadoop_secrets"] == {"fs.azure.account.key.acct1.dfs.core.windows.net": "***"}
    assert plan["env"]["SPARKJOBS_SHARED"] == "abfss://runs@acct1.dfs.core.windows.net/team/shared/ws/demo/"
    assert plan["submit"]["outputs_uri"] == f"abfss://runs@acct1.dfs.core.windows.net/team/runs/{plan['run_id']}/outputs/"
    assert key not in done.stdout + done.stderr


def test_snapshot_zip_is_deterministic(tmp_path):
    project = tmp_path / "proj"
    write(project / "b.py", "print('b')\n")
    write(project / "pkg" / "a.py", "A = 1\n")
    (project / "run.sh").write_text("#!/bin/sh\n")
    (project / "run.sh").chmod(0o755)
    zips = []
    for attempt in range(2):
        snapshot = build_snapshot(project, cap_bytes=1 << 20)
        folder = tmp_path / f"copy{attempt}"
        materialise(snapshot, folder)
        os.utime(folder / "b.py", (attempt * 1000, attempt * 1000))  # mtimes must not matter
        zips.append(write_snapshot_zip(snapshot, folder, tmp_path / f"s{attempt}.zip").read_bytes())
    assert zips[0] == zips[1]
    with zipfile.ZipFile(tmp_path / "s0.zip") as archive:
        assert archive.namelist() == ["b.py", "pkg/a.py", "run.sh"]
        assert archive.getinfo("run.sh").external_attr >> 16 == 0o755
