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
from pathlib import Path

import pytest
from helpers import cli, cli_json, write
from plugins.azurite import DEV_ACCOUNT, DEV_KEY
from plugins.azurite_tls import (
    ClusterConf,
    TlsAzurite,
    cluster_conf,
    cluster_spark_home,
    encrypted_key_settings,
    hadoop_azure_jars,
)

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


# ---- the infrastructure itself: a plain spark-submit -------------------------------------------
PLAIN_JOB = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.range(5).write.mode("overwrite").parquet(sys.argv[1])
print("COUNT", spark.read.parquet(sys.argv[1]).count())
"""


def _plain_submit(conf: ClusterConf, azurite: TlsAzurite, tmp_path: Path, uri: str, key: str) -> subprocess.CompletedProcess:
    """spark-submit of Spark 3.5 with only --jars and the JVM options: nothing of sparkjobs."""
    script = write(tmp_path / "plain.py", PLAIN_JOB)
    env = conf.env(os.environ)
    del env["SPARK_CONF_DIR"]  # no cluster defaults: everything is on the command line
    argv = [
        str(conf.spark_home / "bin" / "spark-submit"), "--master", "local[1]",
        "--jars", ",".join(str(jar) for jar in hadoop_azure_jars()),
        "--conf", f"spark.driver.extraJavaOptions={azurite.java_options}",
        "--conf", "spark.ui.enabled=false",
        # Azurite's published development key, or a wrong one: neither is a secret.
        "--conf", f"spark.hadoop.fs.azure.account.key.{azurite.host()}={key}",
        str(script), uri,
    ]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_plain_spark_submit_reads_and_writes_wasbs_and_the_key_is_checked(tls_azurite, wasb_container, tmp_path):
    tls_azurite.container_client(wasb_container).create_container()
    conf = cluster_conf(tmp_path / "cluster", tls_azurite)
    uri = tls_azurite.wasbs(wasb_container, "plain/numbers")
    assert uri == f"wasbs://{wasb_container}@devstoreaccount1.blob.core.windows.net/plain/numbers"

    done = _plain_submit(conf, tls_azurite, tmp_path, uri, DEV_KEY)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "COUNT 5" in done.stdout
    written = [b.name for b in tls_azurite.container_client(wasb_container).list_blobs(name_starts_with="plain/numbers/")]
    assert any(name.endswith(".parquet") for name in written), written

    refused = _plain_submit(conf, tls_azurite, tmp_path, tls_azurite.wasbs(wasb_container, "plain/other"), WRONG_KEY)
    assert refused.returncode == 1, refused.stderr[-4000:]
    # spark-submit sends the Python driver's stdout and stderr both to its stdout.
    assert "Server failed to authenticate the request" in refused.stdout, refused.stdout[-4000:]


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


def test_a_wasbs_job_writes_and_reads_through_the_real_driver(tls_azurite, wasb_container, tmp_path):
    """Spark itself writes a table to the run's outputs URI and reads it back; a FileSystem
    made after the bootstrap's credential step works; the key is in no stored log."""
    project = _project(tmp_path / "proj", tls_azurite.wasbs(wasb_container, "team"))
    conf = cluster_conf(tmp_path / "cluster", tls_azurite)
    env = _env(conf, _credentials(tmp_path / "credentials.yaml", tls_azurite, DEV_KEY))

    started = time.monotonic()
    done, record = _run(project, env)
    print(f"one wasbs job on the spark target, command start to end: {time.monotonic() - started:.1f} s")  # a figure, not a check
    assert done.returncode == 0, done.stderr[-4000:]
    assert record["status"] == "completed", record
    assert "READ BACK 3" in done.stderr and "FRESH LISTS" in done.stderr and "SCRIPT DONE" in done.stderr
    paths = {artifact["path"] for artifact in record["artifacts"]}
    assert "outputs/result.txt" in paths and any(p.startswith("outputs/numbers/part-") for p in paths), paths
    log = tls_azurite.container_client(wasb_container).download_blob(f"team/runs/{record['id']}/driver.log").readall().decode()
    assert "SCRIPT DONE" in log and DEV_KEY not in log


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
    over it with the plain key, which every later FileSystem handed to the decrypt script."""
    tls_azurite.container_client(wasb_container).create_container()
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    conf = cluster_conf(cluster, tls_azurite, encrypted_key_settings(cluster, DEV_ACCOUNT, DEV_KEY))
    project = _project(tmp_path / "proj", tls_azurite.wasbs(wasb_container, "team"))
    env = _env(conf, _credentials(tmp_path / "credentials.yaml", tls_azurite, DEV_KEY))

    done, record = _run(project, env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert record["status"] == "completed", record
    assert "FRESH LISTS" in done.stderr  # a FileSystem made after the bootstrap's step still decrypts
    assert "already has access to storage account devstoreaccount1" in done.stderr
    stored = _blobs(tls_azurite, wasb_container, f"team/runs/{record['id']}/")
    assert f"team/runs/{record['id']}/outputs/result.txt" in stored


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
