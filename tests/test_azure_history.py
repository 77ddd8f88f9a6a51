"""Run history in an Azure Blob container (Azurite): the same run logic as the local store, a
secret-leak scan over everything a run wrote, and incremental snapshot uploads counted in bytes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from sparkjobs.credentials import resolve_storage_credentials
from sparkjobs.snapshot import build_snapshot
from sparkjobs.snapshot_store import SnapshotStore
from sparkjobs.storage.registry import open_store

from helpers import cli, cli_json, make_project, write

pytestmark = pytest.mark.azurite

JOB = """
import os
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
os.makedirs("outputs", exist_ok=True)
open("outputs/result.txt", "w").write(str(spark.range(5).count()))
print("environment keys:", sorted(k for k in os.environ if k.startswith("AZURE")))
spark.stop()
"""


def blobs(azurite, container: str) -> dict[str, int]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string, retry_total=1)
    client = service.get_container_client(container)
    return {b.name: b.size for b in client.list_blobs()}


def blob_text(azurite, container: str, name: str) -> bytes:
    service = BlobServiceClient.from_connection_string(azurite.connection_string, retry_total=1)
    return service.get_blob_client(container, name).download_blob().readall()


@pytest.fixture(scope="module")
def azure_run(azurite, tmp_path_factory):
    base = tmp_path_factory.mktemp("azure-history")
    container = "history-e2e"
    env = dict(os.environ)
    env.update(
        SPARKJOBS_HOME=str(base / "home"),
        SPARKJOBS_HISTORY=f"wasbs://{container}@{azurite.account}.blob.core.windows.net/team",
        AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string,
    )
    project = make_project(base / "proj", base / "share")
    write(project / "job.py", JOB)
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(project), "job.py", env=env)
    return {"env": env, "project": project, "container": container, "done": done, "record": record, "base": base}


@pytest.mark.spark
def test_run_is_recorded_in_the_container(azure_run, azurite):
    record, container = azure_run["record"], azure_run["container"]
    assert azure_run["done"].returncode == 0, azure_run["done"].stderr
    assert record["status"] == "completed"
    stored = blobs(azurite, container)
    run = f"team/runs/{record['id']}"
    assert f"{run}/run.json" in stored and f"{run}/driver.log" in stored
    assert blob_text(azurite, container, f"{run}/outputs/result.txt") == b"5"
    assert json.loads(blob_text(azurite, container, f"{run}/run.json"))["status"] == "completed"
    assert any(name.startswith(f"team/snapshots/{record['snapshot']}/COMPLETE") for name in stored)
    # nothing went to the local store
    assert not (Path(azure_run["env"]["SPARKJOBS_HOME"]) / "runs").exists()


@pytest.mark.spark
def test_list_show_and_download_work_against_the_container(azure_run, tmp_path):
    env, project, record = azure_run["env"], azure_run["project"], azure_run["record"]
    done, listed = cli_json("runs", "list", "--json", "--project", str(project), env=env)
    assert [r["id"] for r in listed] == [record["id"]]
    shown = cli("runs", "show", record["id"], "--project", str(project), env=env)
    assert "outputs/result.txt" in shown.stdout
    done = cli("artifacts", "download", record["id"], "outputs/result.txt", "-o", str(tmp_path), "--project", str(project), env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "result.txt").read_text() == "5"


@pytest.mark.spark
def test_no_secret_in_anything_the_run_wrote(azure_run, azurite):
    key = azurite.key
    assert key not in azure_run["done"].stdout + azure_run["done"].stderr
    for blob_name in blobs(azurite, azure_run["container"]):
        assert key.encode() not in blob_text(azurite, azure_run["container"], blob_name), blob_name
    for root in (Path(azure_run["env"]["SPARKJOBS_HOME"]), azure_run["project"]):
        for path in root.rglob("*"):
            if path.is_file():
                assert key.encode() not in path.read_bytes(), path


def test_unreachable_container_is_one_clear_error(tmp_path):
    env = dict(os.environ)
    env.update(
        SPARKJOBS_HOME=str(tmp_path / "home"),
        SPARKJOBS_HISTORY="wasbs://history@devstoreaccount1.blob.core.windows.net/x",
        # a closed port: nothing listens on port 9 of the loopback interface
        AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;",
    )
    done = cli("runs", "list", "--project", str(tmp_path), env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("Error:") and "Traceback" not in done.stderr
    assert "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq" not in done.stderr


def test_one_changed_file_uploads_only_its_bytes_and_the_manifest(azurite, tmp_path):
    project = tmp_path / "big"
    for i in range(200):
        write(project / f"pkg{i % 10}" / f"mod{i}.py", f"VALUE = {i}\n" + "#" * 2000 + "\n")
    container = "incremental"
    location = f"wasbs://{container}@{azurite.account}.blob.core.windows.net/snap"
    environ = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    store = open_store(location, resolve_storage_credentials(location, environ))
    snapshots = SnapshotStore(store)
    first = build_snapshot(project, cap_bytes=None)
    snapshots.save(first)
    before = blobs(azurite, container)

    assert snapshots.save(first).uploaded_bytes == 0  # unchanged: nothing at all
    assert blobs(azurite, container) == before

    changed = "VALUE = 'changed'\n" + "#" * 1000 + "\n"  # about 1 KiB
    write(project / "pkg3" / "mod13.py", changed)
    second = build_snapshot(project, cap_bytes=None)
    report = snapshots.save(second, known_complete=first.digest)
    after = blobs(azurite, container)
    new = {name: size for name, size in after.items() if name not in before}
    manifest = new.pop(f"snap/snapshots/{second.digest}/manifest.json")
    marker = new.pop(f"snap/snapshots/{second.digest}/COMPLETE")
    assert list(new.values()) == [len(changed)]  # exactly one new object: the changed file
    assert report.uploaded_bytes == len(changed) + manifest + marker
