"""Azurite over HTTPS under the real account host names, and a cluster-side Spark that reaches it
through the real hadoop-azure wasb driver, as an HDInsight 5.1 cluster reaches Azure Storage.

What it sets up, and why each piece:

* **The cluster's Spark**: pyspark 3.5.3 (Hadoop 3.3.4, the line HDInsight 5.1 runs and the last
  with wasb) and hadoop-azure 3.3.4 with the runtime jars Spark lacks, both in ``tests/.cache``,
  fetched by ``tests/hdi/azure/fetch`` (``bash tests/run`` calls it). Missing pieces fail the
  test with that command, never skip it.
* **A loopback address of its own**: Azurite listens on ``127.X.Y.Z:443``, an address picked at
  random in 127.0.0.0/8 (all of which Linux routes to ``lo``), so test sessions running side by
  side do not collide. Port 443 because the wasb driver builds ``https://ACCOUNT.blob.core.windows.net``
  itself and cannot be given a port; binding it needs root (the test machines run as root).
* **A certificate for the real names**: a throw-away CA signs a certificate whose names are
  ``devstoreaccount1.blob.core.windows.net``, ``seconddata.blob.core.windows.net`` and the
  address. Azurite reads the account from the first label of a host name it is called by
  (its "production-style URL" mode), so ``https://devstoreaccount1.blob.core.windows.net/c/x``
  is account ``devstoreaccount1``, container ``c``, and Azurite checks the shared-key
  signature against that account's key: a wrong key is refused.
* **For the JVM**: a trust store holding the test CA and a hosts file (``-Djdk.net.hosts.file``)
  mapping the account names to the address. The JDK reads that file *instead of* DNS, so in
  those JVMs only the names written there resolve (the accounts, localhost and this machine's
  name); that is also why the trust store needs no other CA. The emulator switch
  (``fs.azure.storage.emulator.account.name``) is never used: it ignores keys.
* **For Python** (sparkjobs' AzureBlobStore, the SDK): no hosts file exists for a Python
  process, so it reaches the same Azurite by address, path-style
  (``https://127.X.Y.Z/devstoreaccount1``, which the certificate also names), through a
  connection string, verifying TLS against the CA file (``ca_bundle`` in the credentials file).
* **A second account**, ``seconddata``, with a key made for the session (``AZURITE_ACCOUNTS``;
  Azurite then serves only the accounts listed, so devstoreaccount1 is listed too).

``ClusterConf`` is the cluster side's configuration: a ``SPARK_CONF_DIR`` whose
spark-defaults.conf puts hadoop-azure on the driver's and executors' class path (HDInsight has
it on the Hadoop class path; ``--jars`` would come too late for spark-submit's own download of
a ``wasbs://`` main file) and the JVM options above in ``spark.{driver,executor}.defaultJavaOptions``
(the administrator's options, which a job's ``extraJavaOptions`` add to rather than replace), and a
``HADOOP_CONF_DIR`` with a core-site.xml of the caller's choice, e.g. an encrypted account key read
through ``ShellDecryptionKeyProvider`` (``encrypted_key_settings``), as HDInsight writes it.
"""
from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from .azurite import DEV_ACCOUNT, DEV_KEY, Azurite, AzuriteMissing, azurite_main, stop_azurite

__all__ = [
    "ClusterConf",
    "SECOND_ACCOUNT",
    "SPARK_VERSION",
    "HADOOP_VERSION",
    "TlsAzurite",
    "cluster_conf",
    "cluster_pythonpath",
    "cluster_spark_home",
    "encrypted_key_settings",
    "hadoop_azure_jars",
    "start_tls_azurite",
    "tls_azurite",
    "wasb_container",
]

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "tests" / ".cache"
SPARK_VERSION = "3.5.3"
HADOOP_VERSION = "3.3.4"
FETCH = "bash tests/hdi/azure/fetch"
SECOND_ACCOUNT = "seconddata"
HTTPS_PORT = 443
#: Not a secret: a trust store holds only public certificates, and Java wants a password for one.
TRUST_PASSWORD = "changeit"


class ClusterSparkMissing(RuntimeError):
    """The cluster-side Spark or hadoop-azure is not in tests/.cache."""


# ---- the cluster's Spark and hadoop-azure, from tests/.cache ----------------------------------
def cluster_pythonpath() -> Path:
    """The folder ``pip install --target`` made: pyspark 3.5.3 and its py4j. It must lead
    PYTHONPATH of every cluster-side process, or Python imports the main pyspark 4 instead."""
    return CACHE / f"spark-{SPARK_VERSION}"


def cluster_spark_home() -> Path:
    """SPARK_HOME of the cluster side: pyspark 3.5.3, a Spark distribution on Hadoop 3.3.4.

    The same function (same pin) is expected from tests/plugins/hdi_cluster.py, which will own it.
    """
    home = cluster_pythonpath() / "pyspark"
    if not (home / "bin" / "spark-submit").is_file():
        raise ClusterSparkMissing(f"Spark {SPARK_VERSION} is not installed at {home}: run '{FETCH}'.")
    return home


def hadoop_azure_jars() -> list[Path]:
    """hadoop-azure 3.3.4 and the runtime jars Spark 3.5.3 lacks (tests/hdi/azure/pom.xml)."""
    folder = CACHE / f"hadoop-azure-{HADOOP_VERSION}"
    jars = sorted(folder.glob("*.jar"))
    if not (folder / "COMPLETE").is_file() or not any(j.name.startswith("hadoop-azure-") for j in jars):
        raise ClusterSparkMissing(f"hadoop-azure {HADOOP_VERSION} is not in {folder}: run '{FETCH}'.")
    return jars


# ---- TLS material ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tls:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _make_tls(folder: Path, names: list[str], address: str) -> _Tls:
    """A throw-away CA and a server certificate it signs, for ``names`` and ``address``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sparkjobs test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(name) for name in names] + [x509.IPAddress(ipaddress.ip_address(address))]
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tls = _Tls(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    tls.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tls


def _trust_store(folder: Path, ca_file: Path) -> Path:
    """A PKCS12 trust store with the test CA, for ``-Djavax.net.ssl.trustStore``."""
    store = folder / "truststore.p12"
    subprocess.run(
        [shutil.which("keytool") or "keytool", "-importcert", "-noprompt", "-alias", "sparkjobs-test-ca",
         "-file", str(ca_file), "-keystore", str(store), "-storetype", "PKCS12", "-storepass", TRUST_PASSWORD],
        check=True, capture_output=True,
    )
    return store


# ---- Azurite over HTTPS ------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsAzurite:
    """A running Azurite on ``address:443`` with TLS, serving ``accounts`` (name → key)."""

    address: str
    server: Azurite = field(repr=False, compare=False)
    folder: Path = field(repr=False)
    ca_file: Path
    trust_store: Path
    hosts_file: Path
    accounts: Mapping[str, str] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.server.pid

    @staticmethod
    def host(account: str = DEV_ACCOUNT, service: str = "blob") -> str:
        return f"{account}.{service}.core.windows.net"

    def wasbs(self, container: str, path: str = "", account: str = DEV_ACCOUNT) -> str:
        """A real ``wasbs://`` URI, unchanged from what a job on HDInsight would use."""
        return f"wasbs://{container}@{self.host(account)}/{path}"

    def blob_endpoint(self, account: str = DEV_ACCOUNT) -> str:
        """The endpoint Python uses: by address, path-style (no hosts file for Python)."""
        return f"https://{self.address}/{account}"

    def connection_string(self, account: str = DEV_ACCOUNT, key: str | None = None) -> str:
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key or self.accounts[account]};"
            f"BlobEndpoint={self.blob_endpoint(account)};"
        )

    @property
    def java_options(self) -> str:
        """What a JVM needs to reach Azurite by the real names and trust its certificate."""
        return (
            f"-Djdk.net.hosts.file={self.hosts_file} -Djavax.net.ssl.trustStore={self.trust_store} "
            f"-Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword={TRUST_PASSWORD}"
        )

    def container_client(self, name: str, account: str = DEV_ACCOUNT) -> Any:
        """A plain SDK client (TLS verified against the CA) for checking what was written."""
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(
            self.connection_string(account), retry_total=1, connection_timeout=5, connection_verify=str(self.ca_file)
        )
        return service.get_container_client(name)


def _loopback_address() -> str:
    """A random address in 127.0.0.0/8 whose port 443 is free."""
    for _ in range(20):
        address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
        with socket.socket() as sock:
            try:
                sock.bind((address, HTTPS_PORT))
            except PermissionError:
                raise AzuriteMissing(
                    f"Azurite over HTTPS must listen on port {HTTPS_PORT} (the wasb driver takes no port), "
                    "which needs root or CAP_NET_BIND_SERVICE."
                ) from None
            except OSError:
                continue
            return address
    raise RuntimeError(f"No free loopback address for port {HTTPS_PORT} after 20 tries.")


def _own_address() -> str:
    """What this machine's name resolves to now, so Spark binds as it would without the file."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _answers_tls(address: str, ca_file: Path, server_name: str) -> bool:
    import ssl

    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with socket.create_connection((address, HTTPS_PORT), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=server_name):
                return True
    except OSError:
        return False


def start_tls_azurite(timeout: float = 120.0) -> TlsAzurite:
    """Start Azurite with TLS on a fresh loopback address; see the module docstring."""
    main = azurite_main()
    node = shutil.which("node")
    if node is None:
        raise AzuriteMissing("Node.js is not on PATH; Azurite needs it (run 'bash tests/run').")
    accounts = {DEV_ACCOUNT: DEV_KEY, SECOND_ACCOUNT: base64.b64encode(secrets.token_bytes(64)).decode()}
    folder = Path(tempfile.mkdtemp(prefix="azurite-tls-"))
    address = _loopback_address()
    # The dfs names too: Azurite has no ADLS Gen2 API, but the abfs driver's requests reach it
    # and are signed with the key, which Azurite checks (see test_wasb_driver's abfss tests).
    names = [TlsAzurite.host(account) for account in accounts] + [TlsAzurite.host(account, "dfs") for account in accounts]
    tls = _make_tls(folder, names, address)
    trust = _trust_store(folder, tls.ca_file)
    hosts = folder / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{_own_address()} {socket.gethostname()}\n{address} {' '.join(names)}\n")
    env = {**os.environ, "AZURITE_ACCOUNTS": ";".join(f"{name}:{key}" for name, key in accounts.items())}
    argv = [node, str(main), "--blobHost", address, "--blobPort", str(HTTPS_PORT), "--inMemoryPersistence",
            "--cert", str(tls.cert_file), "--key", str(tls.key_file),
            "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
    with open(folder / "azurite.log", "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env)
    server = Azurite(HTTPS_PORT, process, folder)
    azurite = TlsAzurite(address, server, folder, tls.ca_file, trust, hosts, accounts)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _answers_tls(address, tls.ca_file, names[0]):
            return azurite
        time.sleep(0.1)
    output = (folder / "azurite.log").read_text(errors="replace")[-2000:]
    stop_azurite(server)
    raise RuntimeError(f"Azurite over HTTPS did not start on {address}:{HTTPS_PORT} within {timeout:.0f} s:\n{output}")


@pytest.fixture(scope="session")
def tls_azurite() -> Iterator[TlsAzurite]:
    """One Azurite over HTTPS for the session. Fails (never skips) when it cannot start."""
    try:
        server = start_tls_azurite()
    except (AzuriteMissing, OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"Azurite over HTTPS could not be started: {exc}", pytrace=False)
    try:
        yield server
    finally:
        stop_azurite(server.server)


@pytest.fixture
def wasb_container() -> str:
    """A container name no other test uses; nothing creates it."""
    return f"wasb-{uuid.uuid4().hex[:16]}"


# ---- the cluster side's configuration ---------------------------------------------------------
@dataclass(frozen=True)
class ClusterConf:
    """SPARK_CONF_DIR and HADOOP_CONF_DIR of the cluster-side Spark 3.5."""

    spark_home: Path
    spark_conf_dir: Path
    hadoop_conf_dir: Path

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with this Spark (and its Python package) in front of everything else."""
        env = dict(base)
        env["SPARK_HOME"] = str(self.spark_home)
        env["SPARK_CONF_DIR"] = str(self.spark_conf_dir)
        env["HADOOP_CONF_DIR"] = str(self.hadoop_conf_dir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cluster_pythonpath()), base.get("PYTHONPATH")]))
        env["PATH"] = os.pathsep.join(filter(None, [str(self.spark_home / "bin"), base.get("PATH")]))
        return env


def core_site_xml(settings: Mapping[str, str]) -> str:
    properties = "".join(
        f"  <property><name>{escape(name)}</name><value>{escape(value)}</value></property>\n"
        for name, value in settings.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{properties}</configuration>\n'


def cluster_conf(folder: Path, azurite: TlsAzurite, core_site: Mapping[str, str] | None = None) -> ClusterConf:
    """Write the cluster side's configuration for ``azurite`` into ``folder``."""
    spark_home = cluster_spark_home()
    classpath = os.pathsep.join(str(jar) for jar in hadoop_azure_jars())
    spark_conf_dir = folder / "spark-conf"
    hadoop_conf_dir = folder / "hadoop-conf"
    spark_conf_dir.mkdir(parents=True, exist_ok=True)
    hadoop_conf_dir.mkdir(parents=True, exist_ok=True)
    (spark_conf_dir / "spark-defaults.conf").write_text(
        f"spark.driver.extraClassPath {classpath}\n"
        f"spark.executor.extraClassPath {classpath}\n"
        f"spark.driver.defaultJavaOptions {azurite.java_options}\n"
        f"spark.executor.defaultJavaOptions {azurite.java_options}\n"
    )
    (hadoop_conf_dir / "core-site.xml").write_text(core_site_xml(core_site or {}))
    return ClusterConf(spark_home, spark_conf_dir, hadoop_conf_dir)


def encrypted_key_settings(folder: Path, account: str, key: str) -> dict[str, str]:
    """The core-site settings HDInsight writes for its storage account: the key "encrypted"
    (here base64, which the decrypt script undoes) and read through ShellDecryptionKeyProvider.
    A plain key written over the encrypted one reaches the script and comes out as garbage."""
    script = folder / "decrypt.sh"
    script.write_text('#!/bin/sh\n# The test cluster\'s "decryption": base64, as a stand-in for HDInsight\'s certificate.\n'
                      'printf %s "$1" | base64 -d\n')
    script.chmod(0o755)
    host = TlsAzurite.host(account)
    return {
        f"fs.azure.account.key.{host}": base64.b64encode(key.encode()).decode(),
        f"fs.azure.account.keyprovider.{host}": "org.apache.hadoop.fs.azure.ShellDecryptionKeyProvider",
        "fs.azure.shellkeyprovider.script": str(script),
    }
