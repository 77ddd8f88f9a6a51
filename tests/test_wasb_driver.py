"""The real hadoop-azure wasb driver against Azurite over HTTPS, under the real account host names
(tests/plugins/azurite_tls.py): Spark 3.5 on Hadoop 3.3.4, as HDInsight 5.1 has, reading and
writing ``wasbs://CONTAINER@devstoreaccount1.blob.core.windows.net/`` URIs unchanged, with the
account key really checked.

Runs go through the real CLI on a ``spark`` target (``master: local[1]``, client mode) whose
``storage`` is a wasbs:// location: the driver runs on this machine with the cluster side's
Spark (SPARK_HOME, SPARK_CONF_DIR, HADOOP_CONF_DIR of tests/.cache's Spark 3.5), the bootstrap
attaches the storage key at run time and writes ./outputs and the driver log through Hadoop,
and sparkjobs' AzureBlobStore reads them back over HTTPS with TLS verified against the test CA.
Cluster-target runs go through the Livy-protocol test server, whose spark-submit is the same
Spark 3.5 (its environment is this test's).

Covers the defects seen with a real wasb driver (issue 9): a missing container, a wrong key on
the spark and cluster targets, and the bootstrap overwriting a cluster's encrypted key.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from helpers import cli, cli_json, write
from plugins.azurite import DEV_ACCOUNT, DEV_KEY
from plugins.azurite_tls import (
    SECOND_ACCOUNT,
    ClusterConf,
    TlsAzurite,
    cluster_conf,
    encrypted_key_settings,
    hadoop_azure_jars,
)

from sparkjobs.bootstrap import access
from sparkjobs.bootstrap.hadoop import Spark

pytestmark = [pytest.mark.spark, pytest.mark.azurite]

WRONG_KEY = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc="  # base64, not the account's

JOB = """
import os, sys
from pyspark.sql import SparkSession
from sparkjobs import context

spark = SparkSession.builder.getOrCreate()
with open("outputs/result.txt", "w") as f:                    # copied to storage by the bootstrap
    f.write("done")
spark.range(3).write.json(context.outputs_path("numbers"))     # written by Spark through Hadoop
print("READ BACK", spark.read.json(context.outputs_path("numbers")).count())
# A FileSystem made after the bootstrap attached its credentials: the one a later job step gets.
jvm = spark.sparkContext._jvm
uri = jvm.java.net.URI(context.outputs_path())
fresh = jvm.org.apache.hadoop.fs.FileSystem.newInstance(uri, spark.sparkContext._jsc.hadoopConfiguration())
print("FRESH LISTS", len(fresh.listStatus(jvm.org.apache.hadoop.fs.Path(context.outputs_path()))))
fresh.close()
print("SCRIPT DONE")
"""

# Writes nothing through Spark: the bootstrap's copy of ./outputs (or of the driver log) is the
# first write into the container.
OUTPUTS_JOB = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
with open("outputs/result.txt", "w") as f:
    f.write(str(spark.range(4).count()))
print("SCRIPT DONE")
"""


# ---- the drivers themselves: one plain spark-submit, nothing of sparkjobs ----------------------
# It writes and reads a wasbs:// table with the right key (given as spark.hadoop.* conf), then
# probes fresh FileSystem instances with other settings. Azurite serves the Blob API only: the
# abfs driver's status request (HEAD ...?action=getStatus) is answered as Get Blob Properties,
# with the shared-key signature checked, while its writes, listings and renames are ADLS Gen2
# calls that Azurite refuses.
PLAIN_JOB = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
jvm = spark.sparkContext._jvm
table, blob_file, dfs_file, right, wrong = sys.argv[1:]
spark.range(5).write.parquet(table)
print("COUNT", spark.read.parquet(table).count(), flush=True)

def probe(uri, settings):
    conf = jvm.org.apache.hadoop.conf.Configuration(spark.sparkContext._jsc.hadoopConfiguration())
    for name, value in settings.items():
        conf.set(name, value)
    try:
        fs = jvm.org.apache.hadoop.fs.FileSystem.newInstance(jvm.java.net.URI(uri), conf)
        found = f"{fs.getClass().getName().split('.')[-1]} exists={fs.exists(jvm.org.apache.hadoop.fs.Path(uri))} "
        found += f"other={fs.exists(jvm.org.apache.hadoop.fs.Path(uri + '-no'))}"
        fs.close()
        return found
    except Exception as exc:  # Py4JJavaError: its first line is what the driver said
        return str(exc.java_exception.toString()).splitlines()[0]

blob_key = "fs.azure.account.key." + blob_file.split("@")[1].split("/")[0]
dfs_key = "fs.azure.account.key." + dfs_file.split("@")[1].split("/")[0]
for name, uri, settings in (
    ("wasbs-right-key", blob_file, {}),
    ("wasbs-wrong-key", blob_file, {blob_key: wrong}),
    ("abfss-key-under-blob-name", dfs_file, {}),
    ("abfss-wrong-key", dfs_file, {dfs_key: wrong}),
    ("abfss-right-key", dfs_file, {dfs_key: right}),
):
    print("PROBE", name, probe(uri, settings), flush=True)
"""


@pytest.fixture(scope="module")
def plain_run(tls_azurite, tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict[str, str], str]:
    """Spark 3.5's spark-submit with only --jars and the JVM options on its command line."""
    folder = tmp_path_factory.mktemp("plain")
    container = f"plain-{uuid.uuid4().hex[:12]}"
    client = tls_azurite.container_client(container)
    client.create_container()
    client.upload_blob("probe/input.txt", b"abfs")
    conf = cluster_conf(folder / "cluster", tls_azurite)
    env = conf.env(os.environ)
    del env["SPARK_CONF_DIR"]  # no cluster defaults: everything is on the command line
    blob_file = tls_azurite.wasbs(container, "probe/input.txt")
    assert blob_file == f"wasbs://{container}@devstoreaccount1.blob.core.windows.net/probe/input.txt"
    dfs_file = f"abfss://{container}@{tls_azurite.host(DEV_ACCOUNT, 'dfs')}/probe/input.txt"
    argv = [
        str(conf.spark_home / "bin" / "spark-submit"), "--master", "local[1]",
        "--jars", ",".join(str(jar) for jar in hadoop_azure_jars()),
        "--conf", f"spark.driver.extraJavaOptions={tls_azurite.java_options}",
        "--conf", "spark.ui.enabled=false",
        # Azurite's published development key, and a wrong one: neither is a secret.
        "--conf", f"spark.hadoop.fs.azure.account.key.{tls_azurite.host()}={DEV_KEY}",
        str(write(folder / "plain.py", PLAIN_JOB)), tls_azurite.wasbs(container, "plain/numbers"),
        blob_file, dfs_file, DEV_KEY, WRONG_KEY,
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    # spark-submit sends the Python driver's stdout and stderr both to its stdout.
    probes = dict(line.split(" ", 2)[1:] for line in done.stdout.splitlines() if line.startswith("PROBE "))
    return done, probes, container


def test_plain_spark_submit_reads_and_writes_wasbs_and_the_key_is_checked(tls_azurite, plain_run):
    done, probes, container = plain_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "COUNT 5" in done.stdout
    written = _blobs(tls_azurite, container, "plain/numbers/")
    assert any(name.endswith(".parquet") for name in written), written
    assert probes["wasbs-right-key"] == "NativeAzureFileSystem$Secure exists=True other=False"
    assert "Server failed to authenticate the request" in probes["wasbs-wrong-key"]


def test_the_abfs_driver_takes_the_key_under_the_dfs_name_and_azurite_checks_it(plain_run):
    """The real abfs driver (hadoop-azure 3.3.4): a key under the blob name does not reach it,
    a wrong key under the dfs name is refused by Azurite, the right one reads a blob's status."""
    done, probes, _ = plain_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Failure to initialize configuration" in probes["abfss-key-under-blob-name"]
    assert "403" in probes["abfss-wrong-key"] and "Server failed to authenticate" in probes["abfss-wrong-key"]
    assert probes["abfss-right-key"] == "SecureAzureBlobFileSystem exists=True other=False"


# ---- the spark target with wasbs storage, through the CLI --------------------------------------
def _project(root: Path, storage: str, livy: str = "http://127.0.0.1:9/unused") -> Path:
    """``-c wasb``: a spark target (local[1]); ``-c hdi``: a cluster target through ``livy``."""
    write(root / "aml_config" / "wasb.compute", f"type: spark\nmaster: local[1]\nstorage: {storage}\n")
    write(root / "aml_config" / "wasb.runconfig", 'Target: wasb\nFramework: PySpark\nArgumentVector: ["$file"]\n')
    write(root / "aml_config" / "hdi.compute", f"type: cluster\nlivy: {livy}\nstorage: {storage}\nconf:\n  spark.ui.enabled: 'false'\n")
    write(root / "aml_config" / "hdi.runconfig", 'Target: hdi\nFramework: PySpark\nArgumentVector: ["$file"]\n')
    write(root / "aml_config" / "project.yml", "name: demo\nworkspace: ws\n")
    write(root / "job.py", JOB)
    write(root / "outputs_job.py", OUTPUTS_JOB)
    return root


def _credentials(path: Path, azurite: TlsAzurite, key: str) -> Path:
    entry = {"connection_string": azurite.connection_string(DEV_ACCOUNT, key), "ca_bundle": str(azurite.ca_file)}
    path.write_text(json.dumps({"storage": {DEV_ACCOUNT: entry}}))  # JSON is YAML
    path.chmod(0o600)
    return path


def _env(conf: ClusterConf, credentials: Path) -> dict[str, str]:
    return conf.env({**os.environ, "SPARKJOBS_CREDENTIALS": str(credentials)})


def _run(project: Path, env: dict[str, str], script: str = "job.py", config: str = "wasb") -> tuple[subprocess.CompletedProcess, dict]:
    return cli_json("run", "--json", "--project", str(project), "-c", config, script, env=env)


def _blobs(azurite: TlsAzurite, container: str, prefix: str = "") -> list[str]:
    return [b.name for b in azurite.container_client(container).list_blobs(name_starts_with=prefix or None)]


def test_missing_container_is_created_before_the_job_so_outputs_and_log_are_kept(tls_azurite, wasb_container, tmp_path, isolated_home):
    """Defect 1: the container did not exist yet, so the wasb driver's create() threw a
    NullPointerException (it looks for the container's root folder and finds none); the outputs
    and driver log of the run were lost, and the run failed after the script had succeeded."""
    project = _project(tmp_path / "proj", tls_azurite.wasbs(wasb_container, "team"))
    conf = cluster_conf(tmp_path / "cluster", tls_azurite)
    env = _env(conf, _credentials(tmp_path / "credentials.yaml", tls_azurite, DEV_KEY))
    assert not tls_azurite.container_client(wasb_container).exists()

    done, record = _run(project, env, "outputs_job.py")
    assert done.returncode == 0, done.stderr[-4000:]
    assert record["status"] == "completed", record
    run = record["id"]
    stored = _blobs(tls_azurite, wasb_container, f"team/runs/{run}/")
    assert f"team/runs/{run}/outputs/result.txt" in stored and f"team/runs/{run}/driver.log" in stored
    assert [a["path"] for a in record["artifacts"]] == ["outputs/result.txt"]
    log = tls_azurite.container_client(wasb_container).download_blob(f"team/runs/{run}/driver.log").readall().decode()
    assert "SCRIPT DONE" in log and "NullPointerException" not in log
    assert not (isolated_home / "work" / run).exists()


def test_wrong_key_on_the_spark_target_ends_the_run_failed_with_the_reason(tls_azurite, wasb_container, tmp_path, isolated_home):
    """Defect 2: with a wrong key the error escaped while the outputs were collected; the record
    stayed 'running', no log was stored and the work folder was left behind."""
    tls_azurite.container_client(wasb_container).create_container()  # so the job itself meets the key
    project = _project(tmp_path / "proj", tls_azurite.wasbs(wasb_container, "team"))
    conf = cluster_conf(tmp_path / "cluster", tls_azurite)
    env = _env(conf, _credentials(tmp_path / "credentials.yaml", tls_azurite, WRONG_KEY))

    done = cli("run", "--project", str(project), "-c", "wasb", "job.py", env=env)
    assert done.returncode == 2, done.stderr[-4000:]  # found before the job starts: bad credentials
    assert "Traceback" not in done.stderr
    assert "Error: Azure Blob storage refused to create container" in done.stderr
    assert "check the connection_string from" in done.stderr
    assert WRONG_KEY not in done.stdout + done.stderr
    listed, runs = cli_json("runs", "list", "--json", "--project", str(project), env=env)
    (record,) = runs
    assert record["status"] == "failed", record
    # Azurite says AuthorizationFailure where Azure says AuthenticationFailed; both are a 403.
    assert "refused to create container" in record["error"] and "AuthorizationFailure" in record["error"], record["error"]
    assert record["artifacts"] == []
    shown = cli("runs", "show", record["id"], "--log", "--project", str(project), env=env)
    assert shown.returncode == 0, shown.stderr
    assert not (isolated_home / "work" / record["id"]).exists(), list((isolated_home / "work").rglob("*"))
    assert _blobs(tls_azurite, wasb_container) == []  # nothing got in with the wrong key


def test_the_bootstrap_leaves_the_clusters_encrypted_key_alone(tls_azurite, wasb_container, tmp_path):
    """Defect 4: core-site holds the account key encrypted, read through ShellDecryptionKeyProvider
    with a decrypt script, as on HDInsight. The bootstrap set fs.azure.account.key.<account>
    over it with the plain key, which every later FileSystem handed to the decrypt script.

    Also the wasbs job itself: Spark writes a table to the run's outputs URI and reads it back,
    a FileSystem made after the bootstrap's credential step works, the key is in no stored log."""
    tls_azurite.container_client(wasb_container).create_container()
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    conf = cluster_conf(cluster, tls_azurite, encrypted_key_settings(cluster, DEV_ACCOUNT, DEV_KEY))
    project = _project(tmp_path / "proj", tls_azurite.wasbs(wasb_container, "team"))
    env = _env(conf, _credentials(tmp_path / "credentials.yaml", tls_azurite, DEV_KEY))

    started = time.monotonic()
    done, record = _run(project, env)
    print(f"one wasbs job on the spark target, command start to end: {time.monotonic() - started:.1f} s")  # a figure, not a check
    assert done.returncode == 0, done.stderr[-4000:]
    assert record["status"] == "completed", record
    assert "READ BACK 3" in done.stderr and "FRESH LISTS" in done.stderr and "SCRIPT DONE" in done.stderr
    assert "already has access to storage account devstoreaccount1" in done.stderr
    paths = {artifact["path"] for artifact in record["artifacts"]}
    assert "outputs/result.txt" in paths and any(p.startswith("outputs/numbers/part-") for p in paths), paths
    log = tls_azurite.container_client(wasb_container).download_blob(f"team/runs/{record['id']}/driver.log").readall().decode()
    assert "SCRIPT DONE" in log and DEV_KEY not in log


# ---- the cluster target: Livy-protocol test server running Spark 3.5's spark-submit -------------
def _as_cluster(conf: ClusterConf, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Livy test server runs batches with this process's environment: make it the cluster's
    (its spark-submit, conf folders and pyspark). The server downloads ``file`` and ``pyFiles``
    from wasbs:// through Hadoop with the cluster's core-site, as spark-submit does on HDInsight."""
    for name, value in conf.env(os.environ).items():
        monkeypatch.setenv(name, value)


def test_cluster_run_reads_storage_with_the_clusters_encrypted_key_and_keeps_it(
    tls_azurite, wasb_container, tmp_path, livy_server, monkeypatch
):
    """Defect 4 on a cluster target, as on HDInsight: spark-submit reads the bootstrap from
    wasbs:// with the cluster's encrypted key; the bootstrap must not set the plain key over it."""
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    conf = cluster_conf(cluster, tls_azurite, encrypted_key_settings(cluster, DEV_ACCOUNT, DEV_KEY))
    _as_cluster(conf, monkeypatch)
    project = _project(tmp_path / "proj", tls_azurite.wasbs(wasb_container, "team"), livy_server.url)
    env = {**os.environ, "SPARKJOBS_CREDENTIALS": str(_credentials(tmp_path / "credentials.yaml", tls_azurite, DEV_KEY))}

    done, record = _run(project, env, config="hdi")
    assert done.returncode == 0, done.stderr[-4000:]
    assert record["status"] == "completed", record
    # The driver log, printed from storage after Livy's log: a fresh FileSystem still decrypts.
    assert "FRESH LISTS" in done.stderr and "READ BACK 3" in done.stderr
    assert "already has access to storage account devstoreaccount1" in done.stderr
    stored = _blobs(tls_azurite, wasb_container, f"team/runs/{record['id']}/")
    assert f"team/runs/{record['id']}/outputs/result.txt" in stored
    assert f"team/runs/{record['id']}/_credentials.json" not in stored


def test_wrong_key_on_the_cluster_target_reports_the_upload_failure(tls_azurite, wasb_container, tmp_path, livy_server, isolated_home):
    """Defect 3: with a wrong key the user saw the cleanup's error (refused to delete
    runs/<id>/_credentials.json, a file that was never written) instead of the upload failure."""
    project = _project(tmp_path / "proj", tls_azurite.wasbs(wasb_container, "team"), livy_server.url)
    env = {**os.environ, "SPARKJOBS_CREDENTIALS": str(_credentials(tmp_path / "credentials.yaml", tls_azurite, WRONG_KEY))}

    done = cli("run", "--project", str(project), "-c", "hdi", "job.py", env=env)
    assert done.returncode == 2, done.stderr
    # The first storage call of the submit is refused (it reads the snapshot's marker first).
    assert "Error: Azure Blob storage refused to " in done.stderr, done.stderr
    assert "(AuthorizationFailure); check the connection_string from" in done.stderr, done.stderr
    assert "_credentials.json" not in done.stderr and "delete" not in done.stderr
    assert "Traceback" not in done.stderr and WRONG_KEY not in done.stderr
    assert livy_server.count("POST") == 0  # nothing was submitted
    _, runs = cli_json("runs", "list", "--json", "--project", str(project), env=env)
    assert [(r["status"], "Azure Blob storage refused to " in r["error"]) for r in runs] == [("failed", True)]
    assert not (isolated_home / "work" / runs[0]["id"]).exists()


# ---- abfss storage: URIs, key name and credential wiring (no dfs endpoint: see the README) ---------
ABFSS_JOB = """
from pyspark.sql import SparkSession
from sparkjobs import context
spark = SparkSession.builder.getOrCreate()
jvm = spark.sparkContext._jvm
shared = context.shared_path("input.txt")
fs = jvm.org.apache.hadoop.fs.Path(shared).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
print("SHARED", shared, fs.getClass().getSimpleName(), fs.getFileStatus(jvm.org.apache.hadoop.fs.Path(shared)).getLen())
"""


def test_an_abfss_storage_gives_the_job_abfss_uris_and_the_dfs_key(tls_azurite, wasb_container, tmp_path):
    """A spark target with ``storage: abfss://...``: the job's shared folder is an abfss:// URI,
    the bootstrap attaches the key under the dfs name, and the real abfs driver reads with it.
    Azurite cannot take abfs writes, so the bootstrap's driver-log upload is refused (a warning:
    the run still completes, and its log is kept from the console)."""
    storage = f"abfss://{wasb_container}@{tls_azurite.host(DEV_ACCOUNT, 'dfs')}/team"
    project = _project(tmp_path / "proj", storage)
    write(project / "abfss_job.py", ABFSS_JOB)
    container = tls_azurite.container_client(wasb_container)
    container.create_container()
    container.upload_blob("team/shared/ws/demo/input.txt", b"12345")  # the same container, through the blob API
    conf = cluster_conf(tmp_path / "cluster", tls_azurite)
    env = _env(conf, _credentials(tmp_path / "credentials.yaml", tls_azurite, DEV_KEY))

    done, record = _run(project, env, "abfss_job.py")
    assert done.returncode == 0, done.stderr[-4000:]
    assert record["status"] == "completed", record
    assert f"SHARED {storage}/shared/ws/demo/input.txt SecureAzureBlobFileSystem 5" in done.stderr
    assert "set 1 Hadoop credential setting: fs.azure.account.key.devstoreaccount1.dfs.core.windows.net" in done.stderr
    assert "could not save the driver log to abfss://" in done.stderr  # Azurite: no ADLS Gen2 writes


def test_dry_run_of_an_abfss_cluster_storage_names_abfss_uris_and_the_dfs_key(tls_azurite, wasb_container, tmp_path, livy_server):
    """What a cluster target sends for an abfss:// storage, without running it."""
    storage = f"abfss://{wasb_container}@{tls_azurite.host(DEV_ACCOUNT, 'dfs')}/team"
    project = _project(tmp_path / "proj", storage, livy_server.url)
    env = {**os.environ, "SPARKJOBS_CREDENTIALS": str(_credentials(tmp_path / "credentials.yaml", tls_azurite, DEV_KEY))}
    done = cli("run", "--project", str(project), "-c", "hdi", "--dry-run", "job.py", env=env)
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    run, submit = described["run_id"], described["submit"]
    key = "fs.azure.account.key.devstoreaccount1.dfs.core.windows.net"
    assert described["hadoop_secrets"] == {key: "***"}
    assert submit["request"]["file"].startswith(f"{storage}/bootstrap/")
    assert submit["request"]["args"] == [f"{storage}/runs/{run}/launch.json"]
    spec = submit["launch_spec"]
    assert spec["outputs_uri"] == f"{storage}/runs/{run}/outputs/"
    assert spec["credentials_uri"] == f"{storage}/runs/{run}/_credentials.json"
    assert spec["env"]["SPARKJOBS_SHARED"] == f"{storage}/shared/ws/demo/"
    uploads = {u["what"]: u for u in submit["uploads"]}
    assert uploads["credentials"]["content"] == {"hadoop": {key: "***"}}
    assert DEV_KEY not in done.stdout + done.stderr and livy_server.count("POST") == 0


# ---- which access of the cluster's the bootstrap leaves alone: a real Hadoop Configuration ------
BLOB_KEY = "fs.azure.account.key.acct.blob.core.windows.net"
DFS_KEY = "fs.azure.account.key.acct.dfs.core.windows.net"


@pytest.fixture(scope="module")
def hadoop_jvm():
    """A JVM gateway (the main pyspark's Hadoop), no SparkContext: Configuration is under test."""
    spark = Spark(plain_local_files=False)
    try:
        yield spark._jvm()
    finally:
        spark.close()


@pytest.mark.parametrize(
    "cluster, ours, left_alone_because",
    [
        ({BLOB_KEY: "the-cluster-key"}, BLOB_KEY, BLOB_KEY),
        ({"fs.azure.account.keyprovider.acct.blob.core.windows.net": "org.apache.hadoop.fs.azure.ShellDecryptionKeyProvider"},
         BLOB_KEY, "fs.azure.account.keyprovider.acct.blob.core.windows.net"),
        ({"fs.azure.sas.data.acct.blob.core.windows.net": "sv=x&sig=y"}, BLOB_KEY, "fs.azure.sas.data.acct.blob.core.windows.net"),
        ({"fs.azure.sas.data.acct.blob.core.windows.net": "sv=x&sig=y"}, "fs.azure.sas.data.acct.blob.core.windows.net",
         "fs.azure.sas.data.acct.blob.core.windows.net"),
        ({"fs.azure.account.auth.type.acct.dfs.core.windows.net": "OAuth"}, DFS_KEY, "fs.azure.account.auth.type.acct.dfs.core.windows.net"),
        ({"fs.azure.account.auth.type": "Custom"}, DFS_KEY, "fs.azure.account.auth.type"),
        ({"fs.azure.account.keyprovider.acct.dfs.core.windows.net": "x.Provider"}, DFS_KEY, "fs.azure.account.keyprovider.acct.dfs.core.windows.net"),
        # no access to that host: sparkjobs' key is set
        ({}, BLOB_KEY, None),
        ({"fs.azure.account.auth.type": "SharedKey"}, DFS_KEY, None),
        ({"fs.azure.account.auth.type": "OAuth", "fs.azure.account.auth.type.acct.dfs.core.windows.net": "SharedKey"}, DFS_KEY, None),
        ({"fs.azure.account.auth.type": "OAuth"}, BLOB_KEY, None),  # abfs settings say nothing of wasb
        ({DFS_KEY: "k"}, BLOB_KEY, None),  # the dfs host's key leaves the blob host without one
        ({"fs.azure.account.key.other.blob.core.windows.net": "k", "fs.azure.sas.data.other.blob.core.windows.net": "s"}, BLOB_KEY, None),
    ],
)
def test_the_bootstrap_sees_the_access_a_cluster_already_has(hadoop_jvm, cluster, ours, left_alone_because):
    configuration = hadoop_jvm.org.apache.hadoop.conf.Configuration(False)
    for name, value in cluster.items():
        configuration.set(name, value)
    host = ours.split(".", 4)[-1]  # fs.azure.account.key.HOST or fs.azure.sas.CONTAINER.HOST
    assert access.credential_host(ours) == host
    expected = {host: left_alone_because} if left_alone_because else {}
    assert access.cluster_access({ours: "sparkjobs-key"}, configuration) == expected


def test_a_key_in_a_hadoop_credential_provider_counts_as_access(hadoop_jvm, tmp_path):
    """HDInsight-style clusters may keep keys in a JCEKS credential provider, not in core-site."""
    configuration = hadoop_jvm.org.apache.hadoop.conf.Configuration(False)
    configuration.set("hadoop.security.credential.provider.path", f"jceks://file{tmp_path}/keys.jceks")
    provider = hadoop_jvm.org.apache.hadoop.security.alias.CredentialProviderFactory.getProviders(configuration).get(0)
    from pyspark import SparkContext

    secret = "the-cluster-key"
    chars = SparkContext._gateway.new_array(hadoop_jvm.char, len(secret))
    for index, char in enumerate(secret):
        chars[index] = char
    provider.createCredentialEntry(BLOB_KEY, chars)
    provider.flush()
    assert configuration.get(BLOB_KEY) is None  # not in the configuration itself
    assert access.cluster_access({BLOB_KEY: "sparkjobs-key"}, configuration) == {"acct.blob.core.windows.net": BLOB_KEY}


# ---- the Python side: sparkjobs' store over HTTPS, TLS verified against a CA of one's own ------
def test_the_store_verifies_tls_with_the_ca_bundle_from_the_credentials_file(tls_azurite, wasb_container, tmp_path):
    from sparkjobs.credentials import known_secrets, resolve_storage_credentials
    from sparkjobs.errors import ConfigError, StorageError
    from sparkjobs.storage.registry import open_store

    location = tls_azurite.wasbs(wasb_container, "team")
    file = _credentials(tmp_path / "credentials.yaml", tls_azurite, DEV_KEY)
    environ = {"SPARKJOBS_CREDENTIALS": str(file)}
    creds = resolve_storage_credentials(location, environ)
    assert creds is not None and creds.ca_bundle == str(tls_azurite.ca_file)
    assert str(tls_azurite.ca_file) not in known_secrets(environ)  # a path, not a secret
    store = open_store(location, creds)
    store.put_bytes("hello.txt", b"over https")
    assert store.get_bytes("hello.txt") == b"over https"
    store.close()

    # Only the CA in the file; the secret from the environment.
    file.write_text(json.dumps({"storage": {DEV_ACCOUNT: {"ca_bundle": str(tls_azurite.ca_file)}}}))
    environ["AZURE_STORAGE_CONNECTION_STRING"] = tls_azurite.connection_string()
    assert resolve_storage_credentials(location, environ).ca_bundle == str(tls_azurite.ca_file)

    # Without it, the system's CAs do not know the test CA: one sentence that says what to do.
    del environ["SPARKJOBS_CREDENTIALS"]
    plain = open_store(location, resolve_storage_credentials(location, environ))
    with pytest.raises(StorageError, match=r"TLS certificate could not be verified.*'ca_bundle' under storage\.devstoreaccount1"):
        plain.get_bytes("hello.txt")
    plain.close()

    file.write_text(json.dumps({"storage": {DEV_ACCOUNT: {"ca_bundle": str(tmp_path / "missing.pem")}}}))
    environ["SPARKJOBS_CREDENTIALS"] = str(file)
    with pytest.raises(ConfigError, match=r"missing\.pem named in .* \(storage\.devstoreaccount1\.ca_bundle\) is not a file"):
        resolve_storage_credentials(location, environ)


def test_a_second_account_is_served_with_its_own_key(tls_azurite, wasb_container):
    """Azurite serves the accounts listed in AZURITE_ACCOUNTS, each checking its own key."""
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobServiceClient

    second = tls_azurite.container_client(wasb_container, SECOND_ACCOUNT)
    second.create_container()
    second.upload_blob("x.txt", b"second")
    assert [b.name for b in second.list_blobs()] == ["x.txt"]
    assert not tls_azurite.container_client(wasb_container).exists()  # another account's namespace
    wrong = BlobServiceClient.from_connection_string(
        tls_azurite.connection_string(SECOND_ACCOUNT, DEV_KEY), retry_total=0, connection_verify=str(tls_azurite.ca_file)
    )
    with pytest.raises(HttpResponseError) as refused:
        wrong.get_container_client(wasb_container).exists()
    assert refused.value.status_code == 403
