"""Issue 10, items 4 and 5: an earlier run's artifacts as a later run's inputs (``run:``
arguments), ``rerun`` of a stored snapshot and ``restore`` of one, through the real CLI.

Where Spark is not the point the scripts are plain Python (``Framework: Python`` on the local
target, the Livy test server's ``python`` runner on the cluster target); the spark target's
test runs one real PySpark job on the standalone cluster. The run store is a local folder, or
an Azure container in Azurite.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import cli, cli_json, make_project, write

from sparkjobs.runs import RunRepository
from sparkjobs.storage.local import LocalStore

TRAIN = """
import os, sys
VERSION = "v1"
tag = sys.argv[1] if len(sys.argv) > 1 else "none"
os.makedirs("outputs/model", exist_ok=True)
open("outputs/model.pkl", "w").write(f"{VERSION} {tag}")
open("outputs/model/part-0", "w").write(f"part {tag}")
print("TRAINED", VERSION, tag)
"""

# Says what each argument is: a file or folder it can read (a path or a file:// URI), or text.
SCORE = """
import os, sys
from urllib.parse import unquote, urlsplit
for arg in sys.argv[1:]:
    value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
    path = unquote(urlsplit(value).path) if value.startswith("file://") else value
    if os.path.isfile(path):
        print("READ", arg, "=", open(path).read())
    elif os.path.isdir(path):
        print("FOLDER", arg, "=", sorted(os.listdir(path)))
    else:
        print("TEXT", arg)
"""

FAIL = """
import os, sys
os.makedirs("outputs", exist_ok=True)
open("outputs/model.pkl", "w").write("from a failed run")
sys.exit(1)
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKJOBS_", "AZURE_STORAGE"))}
    env.update(SPARKJOBS_HOME=str(home), SPARKJOBS_LIVY_POLL_SECONDS="0.2", **extra)
    return env


def _project(base: Path) -> Path:
    project = make_project(base / "proj", base / "share", framework="Python")
    write(project / "train.py", TRAIN)
    write(project / "score.py", SCORE)
    write(project / "fail.py", FAIL)
    return project


def _run(project: Path, env: dict[str, str], *args: str, command: str = "run") -> tuple[subprocess.CompletedProcess, dict]:
    done, record = cli_json(command, "--json", "--project", str(project), *args, env=env)
    assert done.returncode == 0, done.stderr
    return done, record


def _printed(done: subprocess.CompletedProcess) -> list[str]:
    """What the job printed (with --json it goes to stderr), without sparkjobs' own lines."""
    return [line for line in done.stderr.splitlines() if not line.startswith("sparkjobs: ")]


def _log_metrics(home: Path, run_id: str, **metrics: float) -> None:
    """Give a run the last metric values a script logs with context.log_metric (the metrics
    part of issue 10, on its own branch): written into the record as that part writes them."""
    repo = RunRepository(LocalStore(home))
    repo.save(replace(repo.load(run_id), metrics=metrics))


def _run_ids(home: Path) -> list[str]:
    runs = home / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


# --- local store, local target -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Three training runs with an accuracy each, then a newer completed run without a model
    and a newer failed one with a model: neither may be what latest or best pick."""
    base = tmp_path_factory.mktemp("reuse")
    project, home = _project(base), base / "home"
    env = _env(home)
    runs = {}
    for name, accuracy in (("first", 0.7), ("best", 0.9), ("last", 0.8)):
        runs[name] = _run(project, env, "-c", "local", "train.py", name)[1]["id"]
        _log_metrics(home, runs[name], accuracy=accuracy, loss=1 - accuracy)
    runs["no_model"] = _run(project, env, "-c", "local", "score.py", "nothing")[1]["id"]
    failed = cli("run", "--project", str(project), "-c", "local", "fail.py", env=env)
    assert failed.returncode == 1, failed.stderr
    return {"project": project, "home": home, "env": env, "runs": runs}


def test_references_resolve_to_the_stored_artifacts_on_the_local_target(trained):
    project, home, runs = trained["project"], trained["home"], trained["runs"]
    suffix = runs["first"].rsplit("-", 1)[1]
    done, record = _run(project, trained["env"], "-c", "local", "score.py",
                        f"run:{suffix}/outputs/model.pkl", "--latest=run:latest/outputs/model.pkl",
                        "run:best:accuracy/outputs/model.pkl", "run:best:min:accuracy/outputs/model.pkl",
                        "run:best:min:loss/outputs/model.pkl", "run:latest/outputs/model", "run::tag", "--name=run::x")
    lines = _printed(done)
    stored = lambda name, path="outputs/model.pkl": str(home / "runs" / runs[name] / path)  # noqa: E731
    assert lines == [
        f"READ {stored('first')} = v1 first",
        f"READ --latest={stored('last')} = v1 last",
        f"READ {stored('best')} = v1 best",
        f"READ {stored('first')} = v1 first",
        f"READ {stored('best')} = v1 best",
        f"FOLDER {stored('last', 'outputs/model')}/ = ['part-0']",
        "TEXT run:tag",  # the escape: run::x reaches the job as run:x
        "TEXT --name=run:x",
    ]
    # The record keeps the arguments as typed, and what each reference became.
    assert record["args"][1] == "--latest=run:latest/outputs/model.pkl" and record["args"][6] == "run::tag"
    assert record["inputs"][:2] == [
        {"reference": f"run:{suffix}/outputs/model.pkl", "run": runs["first"], "path": "outputs/model.pkl", "resolved": stored("first")},
        {"reference": "run:latest/outputs/model.pkl", "run": runs["last"], "path": "outputs/model.pkl", "resolved": stored("last")},
    ]
    assert [i["run"] for i in record["inputs"][2:]] == [runs["best"], runs["first"], runs["best"], runs["last"]]
    shown = cli("runs", "show", record["id"], "--project", str(project), env=trained["env"]).stdout
    assert f"  model.pkl from run {runs['last']}  (run:latest/outputs/model.pkl)\n" in shown
    assert f"  model/ from run {runs['last']}  (run:latest/outputs/model)\n" in shown


@pytest.mark.parametrize("reference, error", [
    ("run:20200101T000000000Z-abcdef/outputs/model.pkl",
     "Error: The reference run:20200101T000000000Z-abcdef/outputs/model.pkl names no known run (no run "
     "'20200101T000000000Z-abcdef' in the run store at {home}); to pass an argument that starts with 'run:' as it is, "
     "write 'run::' instead."),
    ("run:{first}/outputs/missing.pkl",
     "Error: The reference run:{first}/outputs/missing.pkl names outputs/missing.pkl, which run {first} did not store; "
     "see 'sparkjobs runs show {first}'."),
    ("--model=run:latest/outputs/missing.pkl",
     "Error: The reference run:latest/outputs/missing.pkl asks for a completed run of project demo that stored "
     "outputs/missing.pkl, but there is none in the run store at {home}."),
    ("run:best:f1/outputs/model.pkl",
     "Error: The reference run:best:f1/outputs/model.pkl asks for a completed run of project demo that stored "
     "outputs/model.pkl and logged the metric 'f1': 3 runs stored it, but none logged 'f1' as a number."),
    ("run:latest/model.pkl",
     "Error: The argument 'run:latest/model.pkl' starts with 'run:' but names no artifact: write "
     "run:RUN_ID/outputs/FILE, run:latest/outputs/FILE or run:best:METRIC/outputs/FILE; to pass an argument that "
     "starts with 'run:' as it is, write 'run::' instead."),
])
def test_a_missing_run_or_artifact_fails_before_anything_is_written(trained, reference, error):
    home, first = trained["home"], trained["runs"]["first"]
    before = _run_ids(home)
    done = cli("run", "--project", str(trained["project"]), "-c", "local", "score.py", reference.format(first=first),
               env=trained["env"])
    assert done.returncode == 2
    assert done.stderr.splitlines() == [error.format(home=home, first=first)]
    assert _run_ids(home) == before
    assert not (home / "work").exists() or list((home / "work").iterdir()) == []


def test_dry_run_shows_what_a_reference_resolves_to_and_writes_nothing(trained):
    home, runs = trained["home"], trained["runs"]
    before = _run_ids(home)
    done, plan = cli_json("run", "--dry-run", "--project", str(trained["project"]), "-c", "local", "score.py",
                          "run:latest/outputs/model.pkl", env=trained["env"])
    assert done.returncode == 0, done.stderr
    resolved = str(home / "runs" / runs["last"] / "outputs" / "model.pkl")
    assert plan["args"] == [resolved]
    assert plan["inputs"] == [{"reference": "run:latest/outputs/model.pkl", "run": runs["last"], "path": "outputs/model.pkl",
                               "resolved": resolved}]
    assert _run_ids(home) == before


# --- rerun ---------------------------------------------------------------------------------------


def test_rerun_runs_the_stored_snapshot_not_the_working_tree(tmp_path):
    project, home = _project(tmp_path), tmp_path / "home"
    env = _env(home)
    _, first = _run(project, env, "-c", "local", "train.py", "alpha")
    # The working tree moves on: new code, and the script's helper file is gone.
    write(project / "train.py", TRAIN.replace('VERSION = "v1"', 'VERSION = "v2"'))
    (project / "fail.py").unlink()
    done, current = _run(project, env, "-c", "local", "train.py", "alpha")
    assert _printed(done) == ["TRAINED v2 alpha"]

    done, again = _run(project, env, first["id"][-6:], command="rerun")
    assert _printed(done) == ["TRAINED v1 alpha"]  # the old code ran, with the old arguments
    assert (home / "runs" / again["id"] / "outputs" / "model.pkl").read_text() == "v1 alpha"
    assert again["snapshot"] == first["snapshot"] != current["snapshot"]
    assert again["script"] == "train.py" and again["args"] == ["alpha"]
    assert again["details"]["rerun_of"] == first["id"] and again["project"] == "demo"

    done, changed = _run(project, env, first["id"], "-c", "local", "--", "beta", command="rerun")
    assert _printed(done) == ["TRAINED v1 beta"] and changed["args"] == ["beta"]
    assert not list((home / "cache" / "rerun").iterdir())  # the restored tree is gone


def test_rerun_reads_the_inputs_the_run_read_even_after_newer_runs(tmp_path):
    project, home = _project(tmp_path), tmp_path / "home"
    env = _env(home)
    _, old_model = _run(project, env, "-c", "local", "train.py", "old")
    _, scored = _run(project, env, "-c", "local", "score.py", "--model=run:latest/outputs/model.pkl")
    _run(project, env, "-c", "local", "train.py", "new")
    done, again = _run(project, env, scored["id"], command="rerun")
    assert _printed(done) == [f"READ --model={home}/runs/{old_model['id']}/outputs/model.pkl = v1 old"]
    assert again["args"] == [f"--model=run:{old_model['id']}/outputs/model.pkl"]  # pinned to the run it read


def test_rerun_with_a_configuration_the_snapshot_lacks_is_refused(tmp_path):
    project, home = _project(tmp_path), tmp_path / "home"
    env = _env(home)
    _, first = _run(project, env, "-c", "local", "train.py")
    done = cli("rerun", "--project", str(project), first["id"], "-c", "other", env=env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"Error: The snapshot of run {first['id']} has no run configuration 'other' (it has: local); a rerun runs the "
        "snapshot as it was stored, its aml_config/ included."
    ]
    assert _run_ids(home) == [first["id"]]
    missing = cli("rerun", "--project", str(project), "nope", env=env)
    assert missing.returncode == 2 and missing.stderr.startswith("Error: No run 'nope' in the run store")


def test_a_record_whose_project_is_not_a_folder_name_is_not_rerun(tmp_path):
    project, home = _project(tmp_path), tmp_path / "home"
    env = _env(home)
    _, first = _run(project, env, "-c", "local", "train.py")
    repo = RunRepository(LocalStore(home))
    repo.save(replace(repo.load(first["id"]), project="../../escaped"))  # a hand-edited record
    done = cli("rerun", "--project", str(project), first["id"], env=env)
    assert done.returncode == 2
    assert done.stderr == (f"Error: Run {first['id']} names its project '../../escaped', which is not a folder name; "
                           "it cannot be rerun.\n")
    assert not (home / "cache" / "escaped").exists() and _run_ids(home) == [first["id"]]


# --- restore -------------------------------------------------------------------------------------


def test_restore_writes_the_snapshot_and_refuses_a_non_empty_folder(tmp_path):
    project, home = _project(tmp_path), tmp_path / "home"
    env = _env(home)
    (project / "train.py").chmod(0o755)
    _, first = _run(project, env, "-c", "local", "train.py")
    write(project / "train.py", "print('changed')\n")

    dest = tmp_path / "restored" / "old"
    done = cli("restore", "--project", str(project), first["id"], "-o", str(dest), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Restored the snapshot of run {first['id']} (7 files, {first['snapshot'][:12]}) into {dest}.\n"
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["aml_config/local.compute", "aml_config/local.runconfig", "aml_config/project.yml",
                     "aml_config/spark_dependencies.yml", "fail.py", "score.py", "train.py"]
    assert (dest / "train.py").read_text() == TRAIN.lstrip() and os.access(dest / "train.py", os.X_OK)

    (dest / "train.py").write_text("edited\n")
    (dest / "notes.txt").write_text("mine\n")
    refused = cli("restore", "--project", str(project), first["id"], "-o", str(dest), env=env)
    assert refused.returncode == 2
    assert refused.stderr == (f"Error: {dest} is not empty; restore into a new or empty folder, or use --force to write "
                              "the snapshot's files over it (files it does not have are kept).\n")
    assert (dest / "train.py").read_text() == "edited\n"

    forced = cli("restore", "--project", str(project), first["id"], "-o", str(dest), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert (dest / "train.py").read_text() == TRAIN.lstrip() and (dest / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["old"]  # nothing left beside it

    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("restore", "--project", str(project), first["id"], "-o", str(empty), env=env).returncode == 0
    assert (empty / "train.py").is_file()


def test_a_failed_restore_leaves_the_folder_as_it_was(tmp_path):
    project, home = _project(tmp_path), tmp_path / "home"
    env = _env(home)
    _, first = _run(project, env, "-c", "local", "train.py")
    manifest = json.loads((home / "snapshots" / first["snapshot"] / "manifest.json").read_text())
    score = next(f["sha256"] for f in manifest["files"] if f["path"] == "score.py")
    (home / "objects" / score[:2] / score).unlink()  # the store lost one file's contents
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine\n")
    done = cli("restore", "--project", str(project), first["id"], "-o", str(dest), "--force", env=env)
    assert done.returncode == 2
    assert done.stderr == f"Error: Snapshot {first['snapshot']} is missing the contents of score.py.\n"
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out", "proj", "share"]
    # and a rerun of it fails the same way, recording nothing
    rerun = cli("rerun", "--project", str(project), first["id"], env=env)
    assert rerun.returncode == 2 and "is missing the contents of score.py" in rerun.stderr
    assert _run_ids(home) == [first["id"]]


# --- cluster target (Livy test server, python runner) ---------------------------------------------


def _cluster_compute(project: Path, server_url: str, storage: str) -> None:
    write(project / "aml_config" / "hdi.compute", f"type: cluster\nlivy: {server_url}\nstorage: {storage}\n")
    write(project / "aml_config" / "hdi.runconfig", "Target: hdi\nFramework: PySpark\nArgumentVector: ['$file']\n")


def test_on_a_cluster_target_references_become_uris_in_its_storage(tmp_path, livy_server_factory):
    server = livy_server_factory(runner="python")
    project, home, store = _project(tmp_path), tmp_path / "home", tmp_path / "store"
    _cluster_compute(project, server.url, store.as_uri())
    env = _env(home)
    _, model = _run(project, env, "-c", "local", "train.py", "m")
    done, record = _run(project, env, "-c", "hdi", "score.py", "run:latest/outputs/model.pkl", "--dir=run:latest/outputs/model")
    # Copied into the cluster's storage, the one storage it can surely read, under the new run.
    copied = store / "runs" / record["id"] / "inputs" / model["id"] / "outputs"
    assert (copied / "model.pkl").read_text() == "v1 m" and (copied / "model" / "part-0").read_text() == "part m"
    assert record["inputs"] == [
        {"reference": "run:latest/outputs/model.pkl", "run": model["id"], "path": "outputs/model.pkl",
         "resolved": (copied / "model.pkl").as_uri()},
        {"reference": "run:latest/outputs/model", "run": model["id"], "path": "outputs/model",
         "resolved": (copied / "model").as_uri() + "/"},
    ]
    assert f"READ {(copied / 'model.pkl').as_uri()} = v1 m" in done.stderr
    assert f"FOLDER --dir={(copied / 'model').as_uri()}/ = ['part-0']" in done.stderr
    assert server.batch(0).body["args"] == [(store / "runs" / record["id"] / "launch.json").as_uri()]
    launch = json.loads((store / "runs" / record["id"] / "launch.json").read_text())
    assert launch["args"] == [(copied / "model.pkl").as_uri(), f"--dir={(copied / 'model').as_uri()}/"]


def test_when_the_run_store_is_the_cluster_storage_the_uri_names_the_stored_artifact(tmp_path, livy_server_factory):
    server = livy_server_factory(runner="python")
    project, store = _project(tmp_path), tmp_path / "store"
    _cluster_compute(project, server.url, store.as_uri())
    env = _env(tmp_path / "home", SPARKJOBS_HISTORY=str(store))
    _, model = _run(project, env, "-c", "local", "train.py", "m")
    done, record = _run(project, env, "-c", "hdi", "score.py", f"run:{model['id']}/outputs/model.pkl")
    stored = (store / "runs" / model["id"] / "outputs" / "model.pkl").as_uri()
    assert record["inputs"][0]["resolved"] == stored and f"READ {stored} = v1 m" in done.stderr
    assert not (store / "runs" / record["id"] / "inputs").exists()  # nothing copied


# --- Azure run store (Azurite) --------------------------------------------------------------------


@pytest.mark.azurite
def test_on_a_blob_store_inputs_are_downloaded_into_the_run_folder_or_copied_to_the_cluster(
        tmp_path, azurite, azurite_container, livy_server_factory):
    server = livy_server_factory(runner="python")
    project, home, store = _project(tmp_path), tmp_path / "home", tmp_path / "store"
    _cluster_compute(project, server.url, store.as_uri())
    env = _env(home, SPARKJOBS_HISTORY=f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net/team",
               AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    _, model = _run(project, env, "-c", "local", "train.py", "blob")

    done, local = _run(project, env, "-c", "local", "score.py", "run:latest/outputs/model.pkl", "run:latest/outputs/model")
    folder = home / "work" / local["id"] / "inputs" / model["id"] / "outputs"
    assert _printed(done) == [f"READ {folder / 'model.pkl'} = v1 blob", f"FOLDER {folder / 'model'}/ = ['part-0']"]
    assert "sparkjobs: Downloaded 2 input files (16 bytes) from earlier runs." in done.stderr
    assert [i["resolved"] for i in local["inputs"]] == [str(folder / "model.pkl"), f"{folder / 'model'}/"]
    assert not (home / "work" / local["id"]).exists()  # the run's folder went with its end

    done, remote = _run(project, env, "-c", "hdi", "score.py", "run:latest/outputs/model.pkl")
    copied = store / "runs" / remote["id"] / "inputs" / model["id"] / "outputs" / "model.pkl"
    assert f"READ {copied.as_uri()} = v1 blob" in done.stderr

    # A cluster whose storage is the run store's container, through the abfs driver: the URI names
    # the stored artifact itself, spelled for that driver (--dry-run: no Spark here reads abfss).
    abfss = f"abfss://{azurite_container}@{azurite.account}.dfs.core.windows.net/team"
    write(project / "aml_config" / "abfs.compute", f"type: cluster\nlivy: {server.url}\nstorage: {abfss}\n")
    write(project / "aml_config" / "abfs.runconfig", "Target: abfs\nFramework: PySpark\nArgumentVector: ['$file']\n")
    done, plan = cli_json("run", "--dry-run", "--project", str(project), "-c", "abfs", "score.py",
                          "run:latest/outputs/model.pkl", env=env)
    assert done.returncode == 0, done.stderr
    assert plan["args"] == plan["submit"]["launch_spec"]["args"] == [f"{abfss}/runs/{model['id']}/outputs/model.pkl"]

    missing = cli("run", "--project", str(project), "-c", "local", "score.py", "run:latest/outputs/nope", env=env)
    assert missing.returncode == 2 and "but there is none in the run store at wasbs://" in missing.stderr

    write(project / "train.py", "print('the working tree')\n")
    done, again = _run(project, env, model["id"], command="rerun")  # the snapshot comes from the container
    assert _printed(done) == ["TRAINED v1 blob"] and again["details"]["rerun_of"] == model["id"]


# --- spark target (standalone cluster, real Spark) ---------------------------------------------


SPARK_SCORE = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
model_file, model_folder = sys.argv[1], sys.argv[2]
print("DRIVER READ", open(model_file).read())
print("EXECUTORS READ", spark.sparkContext.textFile(model_folder).collect())
spark.stop()
"""


@pytest.mark.spark
def test_on_a_spark_target_references_become_local_paths(tmp_path, spark_cluster):
    project, home = _project(tmp_path), tmp_path / "home"
    write(project / "spark_score.py", SPARK_SCORE)
    write(project / "aml_config" / "spark.compute",
          f"type: spark\nmaster: {spark_cluster.master_url}\nnativeSharedDirectory: {tmp_path / 'share'}/\n"
          "conf:\n  spark.driver.host: 127.0.0.1\n  spark.ui.enabled: false\n  spark.executor.memory: 512m\n")
    write(project / "aml_config" / "spark.runconfig", 'Target: spark\nArgumentVector: ["$file"]\n')
    # Workers are on this machine here; on a real cluster PYSPARK_PYTHON names the workers' Python.
    env = _env(home, PYSPARK_PYTHON=sys.executable)
    _, model = _run(project, env, "-c", "local", "train.py", "spark")
    done, record = _run(project, env, "-c", "spark", "spark_score.py", "run:latest/outputs/model.pkl", "run:latest/outputs/model")
    assert "DRIVER READ v1 spark" in done.stderr and "EXECUTORS READ ['part spark']" in done.stderr
    stored = home / "runs" / model["id"] / "outputs"
    assert [i["resolved"] for i in record["inputs"]] == [str(stored / "model.pkl"), f"{stored / 'model'}/"]
