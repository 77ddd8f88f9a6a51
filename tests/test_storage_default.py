"""A cluster compute without ``storage`` uses the cluster's own default storage, which the
cluster can always read; and a batch that dies because the cluster cannot read ``storage``
says so (issue 9, defect 5 and "storage defaults to the cluster's own").

The cluster's default storage comes from Ambari behind the HTTPS gateway (tests/gateway).
AMBARI IS SIMULATED: there is no Ambari here; the gateway answers Ambari's documented
response shapes (tests/gateway/payloads/), with an ``fs.defaultFS`` each test chooses. The
gateway itself (TLS, basic auth, /livy) and the Livy-protocol test server behind it are real
servers, and the CLI is the real one. Batches use the test server's ``python`` runner, which
runs the bootstrap with plain Python (no Spark).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from gateway import AMBARI_PREFIX, AmbariSim, Gateway
from helpers import cli, make_project, write
from livy_server import LivyTestServer

SLEEPER = """
import os, sys, time
print("STARTED", flush=True)
os.makedirs("outputs", exist_ok=True)
open("outputs/note.txt", "w").write("written on the cluster")
time.sleep(float(sys.argv[1]))
sys.exit(int(sys.argv[2]))
"""
NOTE = "sparkjobs: storage not set; using the cluster's default storage "


class Project:
    """A project whose ``hdi`` compute reaches Livy through a gateway (or straight), with a home."""

    def __init__(self, base: Path, livy: str, extra: str = "") -> None:
        self.root = make_project(base / "proj", base / "share")
        self.home = base / "home"
        write(self.root / "sleeper.py", SLEEPER)
        self.configure(livy, extra)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKJOBS_", "AZURE_STORAGE"))}
        self.env.update(SPARKJOBS_HOME=str(self.home), SPARKJOBS_LIVY_POLL_SECONDS="0.2")

    def configure(self, livy: str, extra: str = "") -> None:
        write(self.root / "aml_config" / "hdi.compute", f"type: cluster\n{livy}{extra}")
        write(self.root / "aml_config" / "hdi.runconfig", "Target: hdi\nFramework: PySpark\nArgumentVector: ['$file']\n")

    def run(self, *args: str, env: dict[str, str] | None = None):
        return cli("run", "--project", str(self.root), "-c", "hdi", *args, env=env or self.env)

    def nothing_written(self) -> bool:
        return not any(any((self.home / folder).glob("*")) for folder in ("runs", "work"))

    def last_record(self) -> dict:
        newest = max((self.home / "runs").glob("*/run.json"))  # run ids sort by start time
        return json.loads(newest.read_text())


@pytest.fixture
def hdi(tmp_path, livy_server_factory, gateway_factory):
    """A python-runner Livy behind a gateway whose simulated Ambari the test configures."""

    def make(default_fs: str | None) -> tuple[Project, Gateway, LivyTestServer]:
        server = livy_server_factory(runner="python")
        gateway = gateway_factory(server.url, ambari=AmbariSim(default_fs=default_fs))
        project = Project(tmp_path, gateway.compute_keys())
        assert gateway.auth is not None
        project.env["SPARKJOBS_LIVY_PASSWORD"] = gateway.auth[1]
        return project, gateway, server

    return make


def ambari_calls(gateway: Gateway) -> int:
    return gateway.count("GET", prefix=AMBARI_PREFIX)


# --- the default is derived and used ----------------------------------------------------


def test_without_storage_a_run_uses_the_clusters_default_storage_and_asks_once(hdi, tmp_path):
    # A cluster whose fs.defaultFS is a local folder, so that the test server's batches can
    # read it: what is tested is where sparkjobs puts its files and that it says so.
    clusterfs = tmp_path / "clusterfs"
    project, gateway, server = hdi(clusterfs.as_uri())
    expected = f"{clusterfs.as_uri()}/sparkjobs"

    first = project.run("--json", "sleeper.py", "0", "0")
    assert first.returncode == 0, first.stderr
    assert first.stderr.count(NOTE) == 1 and f"{NOTE}{expected}\n" in first.stderr
    record = json.loads(first.stdout)
    assert record["status"] == "completed"
    run_folder = clusterfs / "sparkjobs" / "runs" / record["id"]
    assert (run_folder / "outputs" / "note.txt").read_text() == "written on the cluster"
    assert server.batch(0).body["file"].startswith(f"{expected}/bootstrap/")
    assert ambari_calls(gateway) == 2  # the cluster's name, then its HDFS configuration
    cached = list((project.home / "cache" / "cluster-storage").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["storage"] == expected

    second = project.run("--json", "sleeper.py", "0", "0")
    assert second.returncode == 0, second.stderr
    assert NOTE not in second.stderr  # said once, when it was learnt
    assert ambari_calls(gateway) == 2  # later runs ask nothing
    assert server.batch(1).body["file"].startswith(f"{expected}/bootstrap/")


@pytest.mark.azurite
def test_dry_run_shows_the_default_wasbs_storage_and_where_it_came_from(hdi, azurite, azurite_container):
    default_fs = f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net"
    project, gateway, server = hdi(default_fs)
    env = dict(project.env, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)

    done = project.run("--dry-run", "sleeper.py", "0", "0", env=env)

    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    storage = described["submit"]["storage"]
    assert storage["uri"] == f"{default_fs}/sparkjobs"
    assert "default storage" in storage["from"] and default_fs in storage["from"] and "Ambari" in storage["from"]
    assert described["submit"]["request"]["file"].startswith(f"{default_fs}/sparkjobs/bootstrap/")
    assert done.stderr.count(NOTE) == 1
    assert gateway.count("POST") == 0 and server.batch_count() == 0


# --- an Ambari that cannot answer: one clear error, exit 2, nothing written -------------


@pytest.mark.parametrize(
    ("trouble", "said"),
    [
        ("wrong password", "refused the login 'admin' (HTTP 401)"),
        ("503 storm", "Ambari answered HTTP 503"),
        ("ambari error", "Ambari answered HTTP 500"),
        ("no defaultFS", "has no fs.defaultFS in core-site"),
        ("Data Lake Gen1", "The cluster's default storage is adl://home"),
    ],
)
def test_an_ambari_that_cannot_say_is_one_clear_error(hdi, trouble, said):
    project, gateway, _ = hdi(None if trouble == "no defaultFS" else "adl://home" if trouble == "Data Lake Gen1" else "wasbs://c1@acct1.blob.core.windows.net")
    env = dict(project.env)
    if trouble == "wrong password":
        env["SPARKJOBS_LIVY_PASSWORD"] = "not-the-password"
    elif trouble == "503 storm":
        gateway.fail_next(20, 503, prefix=AMBARI_PREFIX)
    elif trouble == "ambari error":
        gateway.ambari.error_next(500, "An internal system exception occurred: Unable to read configurations", count=5)

    done = project.run("sleeper.py", "0", "0", env=env)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and said in lines[0], done.stderr
    assert "'storage'" in lines[0] and "aml_config/hdi.compute" in lines[0]  # says what to set instead
    assert "Traceback" not in done.stderr and "not-the-password" not in done.stderr
    assert project.nothing_written() and gateway.count("POST") == 0


def test_the_cluster_name_is_ambaris_spelling_of_the_host():
    from sparkjobs.targets.ambari import ambari_url, pick_cluster

    assert ambari_url("https://MyCluster.azurehdinsight.net/livy") == "https://MyCluster.azurehdinsight.net/api/v1"
    assert ambari_url("https://127.0.0.1:8443/livy/") == "https://127.0.0.1:8443/api/v1"
    assert pick_cluster(["MyCluster"], "mycluster.azurehdinsight.net") == "MyCluster"
    assert pick_cluster(["other", "MyCluster"], "MYCLUSTER.azurehdinsight.net") == "MyCluster"
    assert pick_cluster(["other"], "mycluster.azurehdinsight.net") is None
    assert pick_cluster(["only"], "127.0.0.1") == "only"
    assert pick_cluster(["a", "b"], "127.0.0.1") is None


# --- defect 5: the cluster cannot read storage ------------------------------------------

# What spark-submit prints when it cannot fetch Livy's ``file``, and exits 1 before any
# sparkjobs code runs (recorded shapes; the test server runs this instead of the batch).
CANNOT_FETCH = """
import sys
uri = sys.argv[1]
sys.stderr.write("26/11/24 07:33:12 WARN NativeCodeLoader: Unable to load native-hadoop library for your platform\\n")
if sys.argv[2] == "file":
    path = uri.replace("file:///", "file:/")
    sys.stderr.write(f'Exception in thread "main" java.io.FileNotFoundException: File {path} does not exist\\n')
    sys.stderr.write("\\tat org.apache.hadoop.fs.RawLocalFileSystem.deprecatedGetFileStatus(RawLocalFileSystem.java:915)\\n")
else:
    sys.stderr.write('Exception in thread "main" org.apache.hadoop.fs.azure.AzureException: '
                     'com.microsoft.azure.storage.StorageException: Server failed to authenticate the request. '
                     'Make sure the value of Authorization header is formed correctly including the signature.\\n')
    sys.stderr.write("\\tat org.apache.hadoop.fs.azure.AzureNativeFileSystemStore.retrieveMetadata(AzureNativeFileSystemStore.java:2226)\\n")
sys.stderr.write("\\tat org.apache.spark.deploy.SparkSubmit.doSubmit(SparkSubmit.scala:1120)\\n")
sys.exit(1)
"""


def _bootstrap_uri(project: Project, env: dict[str, str]) -> str:
    """Livy's ``file`` for this project's runs, from a dry run (it depends only on the version)."""
    done = project.run("--dry-run", "sleeper.py", "0", "0", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["submit"]["request"]["file"]


def _dies_fetching(project: Project, server: LivyTestServer, env: dict[str, str], kind: str, tmp_path: Path):
    script = write(tmp_path / "cannot_fetch.py", CANNOT_FETCH)
    server.run_instead([sys.executable, str(script), _bootstrap_uri(project, env), kind])
    done = project.run("sleeper.py", "0", "0", env=env)
    return done, project.last_record()


def test_a_batch_that_cannot_fetch_the_bootstrap_says_the_cluster_cannot_read_storage(tmp_path, livy_server_factory):
    server = livy_server_factory(runner="python")
    store = tmp_path / "store"
    project = Project(tmp_path, f"livy: {server.url}\n", f"storage: {store.as_uri()}\n")

    done, record = _dies_fetching(project, server, project.env, "file", tmp_path)

    assert done.returncode == 1 and record["status"] == "failed"
    error = record["error"]
    assert error.startswith("The job failed before recording an exit code; Livy batch 0 ended 'dead'")
    assert f"The cluster could not read the run's files in {store.as_uri()}" in error
    assert "java.io.FileNotFoundException: File file:/" in error  # Livy's own line, as evidence
    assert "or leave 'storage' unset in aml_config/hdi.compute to use the cluster's default storage" in error
    assert error in done.stdout + done.stderr  # the user sees it, not only the record


@pytest.mark.azurite
def test_a_batch_refused_by_azure_storage_names_the_account_and_container(tmp_path, livy_server_factory, azurite, azurite_container):
    server = livy_server_factory(runner="python")
    storage = f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net/team"
    project = Project(tmp_path, f"livy: {server.url}\n", f"storage: {storage}\n")
    env = dict(project.env, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)

    done, record = _dies_fetching(project, server, env, "azure", tmp_path)

    assert done.returncode == 1 and record["status"] == "failed"
    error = record["error"]
    assert f"The cluster could not read the run's files in {storage}" in error
    assert "AzureException" in error and "Server failed to authenticate the request" in error
    assert f"storage account '{azurite.account}' and container '{azurite_container}'" in error
    assert azurite.key not in done.stdout + done.stderr


def test_a_default_storage_the_cluster_cannot_read_points_at_the_cached_answer(hdi, tmp_path):
    clusterfs = tmp_path / "clusterfs"
    project, gateway, server = hdi(clusterfs.as_uri())

    done, record = _dies_fetching(project, server, project.env, "file", tmp_path)

    assert done.returncode == 1, done.stderr
    error = record["error"]
    assert f"The cluster could not read the run's files in {clusterfs.as_uri()}/sparkjobs" in error
    cache = next((project.home / "cache" / "cluster-storage").glob("*.json"))
    assert "the cluster's default storage as its Ambari gave it on" in error and str(cache) in error


def test_a_dead_batch_with_no_word_on_storage_still_says_what_is_likely(tmp_path, livy_server_factory):
    """Livy's log says nothing useful (an old Livy, a log cut short): no driver log in storage
    means the bootstrap never started, and storage is the likely cause."""
    server = livy_server_factory(runner="python")
    store = tmp_path / "store"
    project = Project(tmp_path, f"livy: {server.url}\n", f"storage: {store.as_uri()}\n")
    server.run_instead([sys.executable, "-c", "import sys; sys.exit(1)"])

    done = project.run("--json", "sleeper.py", "0", "0")

    error = json.loads(done.stdout)["error"]
    assert done.returncode == 1
    assert "Nothing shows that sparkjobs' bootstrap started on the cluster (no driver log at" in error
    assert f"if the cluster cannot read {store.as_uri()}, check that the cluster can read that folder" in error


def test_a_job_that_fails_on_its_own_is_not_blamed_on_storage(tmp_path, livy_server_factory):
    server = livy_server_factory(runner="python")
    project = Project(tmp_path, f"livy: {server.url}\n", f"storage: {(tmp_path / 'store').as_uri()}\n")
    write(project.root / "missing.py", "open('/no/such/file.txt')\n")  # a FileNotFoundError of the job's own

    done = project.run("--json", "missing.py")

    error = json.loads(done.stdout)["error"]
    assert done.returncode == 1 and "exited with code 1" in error
    assert "could not read" not in error and "Nothing shows" not in error
