"""HDInsight in a box: one cluster as a user's HDInsight 5.1 is, for the whole test session.

It puts together the real parts of the other plugins:

- **the cluster** (``hdi_cluster``: real Apache Livy 0.7.1 in front of a real single-node YARN,
  spark-submit in yarn-cluster mode), configured here as HDInsight is. This plugin overrides the
  session fixture ``hdi_cluster_options``, so the ONE shared cluster of the session is this one
  (tests/test_hdi_livy.py runs on it too):
  - hadoop-azure 3.3.4 on the class path of spark-submit (``SPARK_DIST_CLASSPATH``: it reads
    Livy's ``wasbs://`` ``file`` and ``pyFiles`` before any of our code runs), of the driver
    (the YARN application master) and of the executors (``spark.{driver,executor}.extraClassPath``);
  - one JVM trust store (the JDK's CAs plus the test CA) and one JVM hosts file
    (``-Djdk.net.hosts.file``) for spark-submit's JVM (``SPARK_SUBMIT_OPTS``), the driver and the
    executors (``spark.{driver,executor}.defaultJavaOptions``). The hosts file maps the storage
    accounts' real names to Azurite, and also Maven Central's names (resolved here at start),
    since the JDK then asks nothing else: ``spark.jars.packages`` still resolves from Maven
    Central in the cluster's spark-submit;
  - a core-site holding devstoreaccount1's key *encrypted*, read through
    ``ShellDecryptionKeyProvider`` and a decrypt script, as HDInsight writes it
    (``encrypted_key_settings``). The cluster can read its default storage by itself.
- **Azurite over HTTPS** (``tls_azurite``) under the real account names, with the second
  account ``seconddata`` (its key made for the session).
- **the HTTPS gateway** (tests/gateway) with basic auth in front of the real Livy, under
  ``/livy``; the login's password is made for the session.

:meth:`HDInsight.write_project` writes a project whose ``hdi`` compute reaches Livy through the
gateway with a ``wasbs://`` storage (and a ``local`` compute beside it), and
:meth:`HDInsight.write_credentials` the user's credentials file (mode 0600, outside the
project): both accounts' connection strings with the CA bundle, and the Livy password.

``start_hdinsight(workdir)`` / ``stop_hdinsight(h)`` do the same outside pytest (bench/).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from gateway import Gateway, TlsFiles, make_tls
from helpers import write

from .azurite import DEV_ACCOUNT, DEV_KEY, stop_azurite
from .azurite_tls import (
    SECOND_ACCOUNT,
    TRUST_PASSWORD,
    TlsAzurite,
    encrypted_key_settings,
    hadoop_azure_jars,
    start_tls_azurite,
)
from .hdi_cluster import LIGHT_JVM, HdiCluster, HdiOptions, start_hdi_cluster, stop_hdi_cluster

__all__ = [
    "HDInsight",
    "MAVEN_CENTRAL_HOSTS",
    "USERNAME",
    "hdinsight",
    "hdinsight_options",
    "hdi_cluster_options",
    "start_hdinsight",
    "stop_hdinsight",
]

USERNAME = "admin"  # HDInsight's default cluster login name
MAVEN_CENTRAL_HOSTS = ("repo1.maven.org", "repo.maven.apache.org")


@dataclass(frozen=True)
class HDInsight:
    """The running parts. ``livy_url`` is the gateway's (what a user's compute names)."""

    cluster: HdiCluster
    azurite: TlsAzurite
    gateway: Gateway = field(repr=False, compare=False)
    password: str = field(repr=False)
    workdir: Path
    owned: bool = False  # started by start_hdinsight, so stop_hdinsight stops the cluster and Azurite too

    @property
    def username(self) -> str:
        return USERNAME

    @property
    def livy_url(self) -> str:
        return self.gateway.url

    @property
    def second_key(self) -> str:
        return self.azurite.accounts[SECOND_ACCOUNT]

    def storage(self, container: str, prefix: str = "team", account: str = DEV_ACCOUNT) -> str:
        """``wasbs://CONTAINER@ACCOUNT.blob.core.windows.net/PREFIX``, as a user writes it."""
        return self.azurite.wasbs(container, prefix, account)

    def write_project(self, root: Path, container: str, prefix: str = "team", *, share: Path | None = None,
                      hdi_extra: str = "") -> Path:
        """A project with ``-c hdi`` (a cluster compute through the gateway, ``storage`` in
        ``container``) and ``-c local`` (local Spark, its shared folder under ``share``)."""
        share = share or root.parent / f"{root.name}-share"
        config = root / "aml_config"
        write(config / "hdi.compute", f"type: cluster\n{self.gateway.compute_keys()}"
                                      f"storage: {self.storage(container, prefix)}\n{hdi_extra}")
        write(config / "local.compute", f"type: local\nnativeSharedDirectory: {share}/\nmaster: local[1]\n")
        for name in ("hdi", "local"):
            write(config / f"{name}.runconfig", f'Target: {name}\nFramework: PySpark\nArgumentVector: ["$file"]\n')
        write(config / "project.yml", "name: demo\nworkspace: ws\n")
        return root

    def write_credentials(self, path: Path, *, keys: Mapping[str, str] | None = None) -> Path:
        """The user's credentials file: each account's connection string (Python reaches Azurite
        by address, hence the endpoint in it) with the test CA, and the Livy password.
        ``keys`` replaces accounts' keys (e.g. a wrong one)."""
        keys = {**self.azurite.accounts, **(keys or {})}
        storage = {
            account: {"connection_string": self.azurite.connection_string(account, key), "ca_bundle": str(self.azurite.ca_file)}
            for account, key in keys.items()
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"storage": storage, "livy": {self.livy_url: {"password": self.password}}}, indent=2))
        path.chmod(0o600)
        return path

    def cli_env(self, credentials: Path, **extra: str) -> dict[str, str]:
        """The test process's environment for a CLI call, with ``credentials`` as the user's file."""
        return {**os.environ, "SPARKJOBS_CREDENTIALS": str(credentials), **extra}

    def secrets(self) -> tuple[str, ...]:
        """What must appear nowhere: the second account's key and the Livy password (the dev
        key is published, hence left out)."""
        return (self.second_key, self.password)


# ---- the cluster's configuration ---------------------------------------------------------------
def hdinsight_options(folder: Path, azurite: TlsAzurite) -> HdiOptions:
    """What makes the shared cluster an HDInsight one reaching ``azurite``; files go in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    java = (
        f"-Djdk.net.hosts.file={_hosts_file(folder, azurite)} -Djavax.net.ssl.trustStore={_trust_store(folder, azurite)} "
        f"-Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword={TRUST_PASSWORD}"
    )
    jars = os.pathsep.join(str(jar) for jar in hadoop_azure_jars())
    light = " ".join(LIGHT_JVM)
    spark_conf = {
        "spark.driver.extraClassPath": jars,
        "spark.executor.extraClassPath": jars,
        # The administrator's options; a job's extraJavaOptions add to them.
        "spark.driver.defaultJavaOptions": f"{light} {java}",
        "spark.executor.defaultJavaOptions": f"{light} {java}",
    }
    # Livy runs spark-submit with its own environment: the JVM that fetches Livy's wasbs:// files
    # (and resolves spark.jars.packages) takes these two (bin/spark-class, the launcher).
    env = {"SPARK_SUBMIT_OPTS": f"{light} {java}", "SPARK_DIST_CLASSPATH": jars}
    core_site = encrypted_key_settings(folder, DEV_ACCOUNT, DEV_KEY)
    return HdiOptions(spark_conf=spark_conf, core_site=core_site, env=env)


def _hosts_file(folder: Path, azurite: TlsAzurite) -> Path:
    """Azurite's hosts file plus Maven Central's names: with ``jdk.net.hosts.file`` the JDK asks
    no DNS at all, so every name a cluster JVM must reach is written here."""
    lines = [azurite.hosts_file.read_text().rstrip("\n")]
    for host in MAVEN_CENTRAL_HOSTS:
        try:
            found = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
        except socket.gaierror:
            continue  # no Maven Central from here: a package test then fails naming the host
        lines += [f"{address} {host}" for address in dict.fromkeys(info[4][0] for info in found)]
    path = folder / "hosts"
    path.write_text("\n".join(lines) + "\n")
    return path


def _trust_store(folder: Path, azurite: TlsAzurite) -> Path:
    """The JDK's own CAs (Maven Central) plus the test CA (Azurite): a trust store given with
    ``javax.net.ssl.trustStore`` replaces the JDK's, it does not add to it."""
    keytool = shutil.which("keytool") or "keytool"
    cacerts = Path(keytool).resolve().parents[1] / "lib" / "security" / "cacerts"
    store = folder / "truststore.p12"
    store.unlink(missing_ok=True)
    # The JDK's cacerts' password is the published default: "changeit".
    subprocess.run([keytool, "-importkeystore", "-noprompt", "-srckeystore", str(cacerts), "-srcstorepass", "changeit",
                    "-destkeystore", str(store), "-deststoretype", "PKCS12", "-deststorepass", TRUST_PASSWORD],
                   check=True, capture_output=True)
    subprocess.run([keytool, "-importcert", "-noprompt", "-alias", "sparkjobs-test-ca", "-file", str(azurite.ca_file),
                    "-keystore", str(store), "-storetype", "PKCS12", "-storepass", TRUST_PASSWORD],
                   check=True, capture_output=True)
    return store


def _gateway(cluster: HdiCluster, tls: TlsFiles) -> tuple[Gateway, str]:
    password = secrets.token_urlsafe(18)
    return Gateway(cluster.livy_url, tls=tls, auth=(USERNAME, password)), password


# ---- plain functions (bench/) ------------------------------------------------------------------
def start_hdinsight(workdir: Path | None = None) -> HDInsight:
    """Start Azurite over HTTPS, the cluster configured for it, and the gateway."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="hdinsight-")).resolve()
    azurite = start_tls_azurite()
    try:
        cluster = start_hdi_cluster(workdir / "cluster", hdinsight_options(workdir / "conf", azurite))
        try:
            gateway, password = _gateway(cluster, make_tls(workdir / "gateway-tls"))
        except BaseException:
            stop_hdi_cluster(cluster)
            raise
    except BaseException:
        stop_azurite(azurite.server)
        raise
    return HDInsight(cluster, azurite, gateway, password, workdir, owned=True)


def stop_hdinsight(h: HDInsight) -> None:
    h.gateway.stop()
    if h.owned:
        stop_hdi_cluster(h.cluster)
        stop_azurite(h.azurite.server)


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def hdi_cluster_options(tmp_path_factory: pytest.TempPathFactory, tls_azurite: TlsAzurite) -> HdiOptions:
    """The session's one cluster is the HDInsight one (overrides hdi_cluster.py's)."""
    try:
        return hdinsight_options(tmp_path_factory.mktemp("hdinsight-conf"), tls_azurite)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"The HDInsight cluster's configuration could not be written: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def hdinsight(hdi_cluster: HdiCluster, tls_azurite: TlsAzurite, gateway_tls: TlsFiles,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[HDInsight]:
    """HDInsight in a box for the whole session; fails (never skips) when a part cannot start."""
    gateway, password = _gateway(hdi_cluster, gateway_tls)
    try:
        yield HDInsight(hdi_cluster, tls_azurite, gateway, password, tmp_path_factory.mktemp("hdinsight"))
    finally:
        gateway.stop()
