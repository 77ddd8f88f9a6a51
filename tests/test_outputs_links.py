"""A job's ./outputs is collected without ever following a symbolic link (issue 7, section 4).

A job that replaces ./outputs with a link to another folder, or puts links inside it, must not
get that folder's files ("shadow") into the run store: the link is not followed, and the run
record names it. Both collection paths are covered: the submitter's upload of a local folder
(local target, through the real CLI) and the bootstrap's copy to storage (spark and cluster
targets with storage; the bootstrap run directly here, and the spark target through the CLI).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli_json, make_project, write

from sparkjobs.bootstrap import BOOTSTRAP_PATH
from sparkjobs.credentials import resolve_storage_credentials
from sparkjobs.errors import ArtifactTransferError
from sparkjobs.storage.registry import open_store

REPLACES_OUTPUTS = """
import os, shutil, sys
shutil.rmtree("outputs", ignore_errors=True)
os.symlink(sys.argv[1], "outputs")
print("outputs now points at", os.readlink("outputs"))
"""

LINKS_INSIDE = """
import os, sys
os.makedirs("outputs/sub", exist_ok=True)
open("outputs/real.txt", "w").write("mine")
os.symlink(sys.argv[1], "outputs/dir_link")
os.symlink(os.path.join(sys.argv[1], "shadow.txt"), "outputs/sub/file_link")
os.symlink("/nonexistent/target", "outputs/dangling")
"""


@pytest.fixture
def shadow(tmp_path) -> Path:
    folder = tmp_path / "shadow"
    write(folder / "shadow.txt", "not the job's output\n")
    write(folder / "deeper" / "more.txt", "nor this\n")
    return folder


def _stored_names(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def local_project(tmp_path):
    project = make_project(tmp_path / "proj", tmp_path / "share", framework="Python")
    write(project / "replace.py", REPLACES_OUTPUTS)
    write(project / "inside.py", LINKS_INSIDE)
    env = dict(os.environ, SPARKJOBS_HOME=str(tmp_path / "home"))
    env.pop("SPARKJOBS_HISTORY", None)
    return project, env, tmp_path / "home"


def test_a_linked_outputs_folder_is_not_followed_on_the_local_target(local_project, shadow):
    project, env, home = local_project
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(project), "replace.py", str(shadow), env=env)
    assert done.returncode == 1, done.stderr  # the job's outputs were not stored: not a success
    assert record["status"] == "failed" and record["artifacts"] == []
    assert record["failed_artifacts"] == ["outputs"]
    assert "symbolic link" in record["error"] and str(shadow) in record["error"]
    run_folder = home / "runs" / record["id"]
    assert _stored_names(run_folder) == ["driver.log", "run.json"]
    assert not any("shadow" in p.name or p.name == "more.txt" for p in home.rglob("*"))
    assert _stored_names(shadow) == ["deeper/more.txt", "shadow.txt"]  # and left alone


def test_links_inside_outputs_are_named_and_not_followed_on_the_local_target(local_project, shadow):
    project, env, home = local_project
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(project), "inside.py", str(shadow), env=env)
    assert done.returncode == 1, done.stderr
    assert [a["path"] for a in record["artifacts"]] == ["outputs/real.txt"]
    assert record["failed_artifacts"] == ["outputs/dangling", "outputs/dir_link", "outputs/sub/file_link"]
    assert record["error"].count("symbolic link") == 3
    assert _stored_names(home / "runs" / record["id"] / "outputs") == ["real.txt"]


@pytest.mark.parametrize("backend", ["local", pytest.param("azure", marks=pytest.mark.azurite)])
def test_upload_tree_never_follows_a_link_on_any_store(backend, tmp_path, shadow, request):
    if backend == "local":
        store = open_store(str(tmp_path / "store"))
    else:
        azurite = request.getfixturevalue("azurite")
        location = f"wasbs://{request.getfixturevalue('azurite_container')}@{azurite.account}.blob.core.windows.net/s"
        store = open_store(location, resolve_storage_credentials(location, {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}))
    outputs = tmp_path / "outputs"
    write(outputs / "real.txt", "mine")
    os.symlink(shadow, outputs / "dir_link")
    os.symlink(shadow / "shadow.txt", outputs / "file_link")
    os.mkfifo(outputs / "fifo")  # reading it would block the upload for good
    with pytest.raises(ArtifactTransferError) as caught:
        store.upload_tree(outputs, "runs/r/outputs")
    assert sorted(caught.value.failed) == ["runs/r/outputs/dir_link", "runs/r/outputs/fifo", "runs/r/outputs/file_link"]
    assert "symbolic link" in caught.value.failed["runs/r/outputs/dir_link"]
    assert [r.key for r in caught.value.succeeded] == ["runs/r/outputs/real.txt"]
    linked = tmp_path / "linked_outputs"
    os.symlink(shadow, linked)
    with pytest.raises(ArtifactTransferError) as caught:
        store.upload_tree(linked, "runs/r2/outputs")
    assert list(caught.value.failed) == ["runs/r2/outputs"] and caught.value.succeeded == []
    assert sorted(obj.key for obj in store.list("runs")) == ["runs/r/outputs/real.txt"]


def _bootstrap(tmp_path: Path, script: str, shadow: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """The bootstrap as the spark and cluster targets run it, with outputs going to storage
    (a file:// store; with no spark-submit around it copies with plain file operations)."""
    work = tmp_path / "driver-cwd"
    write(work / "job.py", script)
    store = tmp_path / "store"
    spec = {"version": 1, "run_id": "r1", "script": "job.py", "args": [str(shadow)], "env": {},
            "snapshot_archive": None, "outputs_uri": (store / "runs" / "r1" / "outputs").as_uri() + "/",
            "log_uri": None, "credentials_uri": None}
    (tmp_path / "launch.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    done = subprocess.run([sys.executable, str(BOOTSTRAP_PATH), str(tmp_path / "launch.json")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    return done, store


def test_the_bootstrap_does_not_follow_a_linked_outputs_folder(tmp_path, shadow):
    done, store = _bootstrap(tmp_path, REPLACES_OUTPUTS, shadow)
    assert done.returncode == 1  # the script succeeded, but its outputs could not be saved
    assert "symbolic link" in done.stderr and str(shadow) in done.stderr
    assert not store.exists() or _stored_names(store) == []
    assert _stored_names(shadow) == ["deeper/more.txt", "shadow.txt"]


def test_the_bootstrap_does_not_follow_links_inside_outputs(tmp_path, shadow):
    done, store = _bootstrap(tmp_path, LINKS_INSIDE, shadow)
    assert done.returncode == 1
    assert _stored_names(store) == ["runs/r1/outputs/real.txt"]
    for name in ("outputs/dir_link", "outputs/sub/file_link", "outputs/dangling"):
        assert name in done.stderr


@pytest.mark.spark
def test_a_linked_outputs_folder_is_not_followed_on_a_spark_target_with_storage(tmp_path, shadow, spark_cluster):
    project = make_project(tmp_path / "proj", tmp_path / "share")
    write(
        project / "aml_config" / "stored.compute",
        f"""
        type: spark
        master: {spark_cluster.master_url}
        nativeSharedDirectory: {tmp_path / "share"}/
        storage: file://{tmp_path / "store"}
        conf:
          spark.driver.host: 127.0.0.1
          spark.ui.enabled: false
        """,
    )
    write(project / "aml_config" / "stored.runconfig", 'Target: stored\nArgumentVector: ["$file"]\n')
    write(project / "replace.py", REPLACES_OUTPUTS)
    env = dict(os.environ, SPARKJOBS_HOME=str(tmp_path / "home"), PYSPARK_PYTHON=sys.executable)
    env.pop("SPARKJOBS_HISTORY", None)
    done, record = cli_json("run", "-c", "stored", "--json", "--project", str(project), "replace.py", str(shadow), env=env)
    assert done.returncode == 1 and record["status"] == "failed", done.stderr
    assert record["artifacts"] == []
    assert "outputs is a symbolic link" in done.stderr and str(shadow) in done.stderr
    assert not (tmp_path / "store" / "runs" / record["id"] / "outputs").exists()
    assert not any(p.name in ("shadow.txt", "more.txt") for p in (tmp_path / "store").rglob("*"))
