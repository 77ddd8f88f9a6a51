"""sparkjobs bootstrap: the application's main file, run on the driver in place of the user's script.

``spark-submit [--py-files snapshot-<digest>.zip,sparkjobs-runtime-<digest>.zip] driver.py SPEC``

SPEC is a local path, a ``file://`` URI or any Hadoop filesystem URI (``wasbs://``, ``abfss://``,
``hdfs://``) of a JSON launch spec; unknown keys are refused, so a misspelt key cannot silently
lose a run's outputs::

    {"version": 1,
     "run_id": "20261124T073312123Z-3f9c2a",
     "script": "src/train.py",            relative POSIX path inside the snapshot
     "args": ["--alpha", "0.5"],
     "snapshot_archive": "snapshot-<digest>.zip" | null,   a zip shipped in --py-files
     "snapshot_manifest": "wasbs://.../snapshots/<digest>/manifest.json" | null,
     "objects_uri": "wasbs://.../objects/" | null,         required with snapshot_manifest
     "env": {"SPARKJOBS_RUN_ID": "...", ...},              strings only
     "outputs_uri": "wasbs://.../runs/ID/outputs/" | null, required with a snapshot to unpack
     "log_uri": "wasbs://.../runs/ID/driver.log" | null,
     "credentials_uri": "wasbs://.../runs/ID/_credentials.json" | null,
     "exit_uri": "wasbs://.../runs/ID/exit.json" | null}

The snapshot comes one of three ways: neither key (the cwd already is the snapshot: the local
target), ``snapshot_archive`` (a zip in pyFiles), or ``snapshot_manifest`` (a content-addressed
snapshot in storage, as cluster targets save it: ``objects/<ab>/<sha256>`` holds each file's
bytes once, so a one-file change uploads one file rather than the whole project again). With a
manifest, each file is copied from ``objects_uri`` to ``<temp>/snapshot/<path>`` by a small
thread pool, its size and SHA-256 checked and its executable bit restored; paths are refused if
absolute or holding ``..``. Then, so that executors can import the project's modules too, the
Python files (every ``.py`` file, and every file inside a package folder) are zipped locally
and given to ``SparkContext.addPyFile``; top-level data files stay on the driver.

What it does, in order: read the spec; tee the Python process's stdout and stderr (file
descriptors, so child processes are caught) into a log sent to ``log_uri`` every
``LOG_INTERVAL_SECONDS`` and at the end; move the Hadoop settings of the credentials file
(``{"hadoop": {"fs.azure.account.key.ACCOUNT.blob.core.windows.net": "..."}, "mask": [...]}``) onto
the SparkContext's Hadoop configuration at run time, never Spark conf, and delete the file; every
string under ``mask`` (each form of each secret, computed by the submitter) is replaced by ``***``
in the driver log; unpack
or copy the snapshot into a temp folder and work there; set ``env``; run the script with
``runpy.run_path(..., run_name="__main__")`` (``__file__`` and ``sys.argv[0]`` are its absolute
path; the script's folder, then the snapshot root, lead ``sys.path``); copy ``./outputs`` to
``outputs_uri`` (also when the script failed); upload the log a last time; write
``{"exit_code": N, "run_id": ..., "outputs_sha256": {"model.pkl": "<hex>", ...}}`` to ``exit_uri`` (last, so its presence means the log and
outputs are in storage: Livy only says success or dead, and forgets a batch after a while);
exit with the script's exit code.

Locations: the spec and the credentials file, when given as a plain path or ``file:`` URI, are
read with open() (and the credentials removed with os.remove), so a local run needs no JVM; other
URIs, and the log, snapshot objects, outputs and exit file, go through Hadoop, except that a
process not started by spark-submit (no JVM to ask, e.g. a test runner) uses plain file
operations for local locations. The bootstrap creates the SparkContext itself only when the spec
is remote (a cluster run: yarn-cluster mode fails an application that never creates one),
credentials must be applied, or snapshot modules must be shipped with ``addPyFile``; the script's
``getOrCreate()`` then shares it. Its own storage I/O uses a separate Hadoop configuration, so it
still works after the script has called ``spark.stop()``.

Known limits: a script that builds ``SparkContext(...)`` directly (not ``getOrCreate``) fails when
the bootstrap created the context; a context the script re-creates after stopping its own lacks the
credentials and the shipped modules; a YARN retry finds the credentials already deleted (submit
with ``spark.yarn.maxAppAttempts=1``); a kill (SIGTERM) ends the process before outputs are copied
and before the exit file is written.

Why it exists: spark-submit and Livy can only run a file. Everything Azure ML Workbench did
around a run (a private copy of the project, environment, outputs kept per run, the driver's
output kept even on YARN) has to happen inside the driver process, on a machine where sparkjobs
is not installed. So this file imports only the standard library and pyspark (lazily), and its
storage access goes through the Hadoop FileSystem API of the JVM Spark already runs.

Exit codes: the script's own (0 success, ``sys.exit(n)`` gives n, an uncaught exception 1);
2 when the bootstrap could not start the script (bad spec, missing snapshot or credentials);
1 when the script succeeded but some outputs could not be saved.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import runpy
import shutil
import sys
import tempfile
import threading
import traceback
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

__all__ = ["EXIT_BOOTSTRAP", "SPEC_VERSION", "BootstrapError", "LaunchSpec", "main"]

SPEC_VERSION = 1
EXIT_BOOTSTRAP = 2
LOG_INTERVAL_SECONDS = 10.0
#: Past this size the driver log keeps a marker instead of more text; the console still gets it
#: all. Every periodic upload sends the whole file, so an unbounded log would make them unbounded.
LOG_CAP_BYTES = 64 * 1024 * 1024

# A scheme has two or more characters, so a Windows drive letter ("C:\\") is not one.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_LOCATION_KEYS = (
    "snapshot_archive", "snapshot_manifest", "objects_uri", "outputs_uri", "log_uri", "credentials_uri", "exit_uri"
)
_SPEC_KEYS = frozenset(("version", "run_id", "script", "args", "env", *_LOCATION_KEYS))
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: Snapshot objects copied from storage at once; each copy is mostly waiting on the network.
FETCH_WORKERS = 8


class BootstrapError(Exception):
    """The launch spec or a file it names cannot be used; str() says what to fix."""


@dataclass(frozen=True)
class LaunchSpec:
    """One run's instructions to the bootstrap (the JSON schema is in the module docstring)."""

    run_id: str
    script: str
    args: tuple[str, ...] = ()
    snapshot_archive: str | None = None
    snapshot_manifest: str | None = None
    objects_uri: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    outputs_uri: str | None = None
    log_uri: str | None = None
    credentials_uri: str | None = None
    exit_uri: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> LaunchSpec:
        """Validate a decoded spec, reporting every problem in one message."""
        if not isinstance(data, dict):
            raise BootstrapError("The launch spec must be a JSON object.")
        problems = _spec_problems(data)
        if problems:
            raise BootstrapError("The launch spec is invalid: " + "; ".join(problems) + ".")
        return cls(
            run_id=data["run_id"],
            script=data["script"],
            args=tuple(data.get("args") or ()),
            env=dict(data.get("env") or {}),
            **{key: data.get(key) for key in _LOCATION_KEYS},
        )


def _spec_problems(data: dict[str, Any]) -> list[str]:
    problems = [f"unknown key {key!r}" for key in sorted(set(data) - _SPEC_KEYS)]
    if data.get("version") != SPEC_VERSION:
        problems.append(f"version is {data.get('version')!r}, this bootstrap reads version {SPEC_VERSION}")
    if not isinstance(data.get("run_id"), str) or not data["run_id"]:
        problems.append("run_id must be a non-empty string")
    script = data.get("script")
    if not isinstance(script, str) or not _is_relative_posix(script):
        problems.append(f"script must be a relative POSIX path without '..' (got {script!r})")
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        problems.append("args must be a list of strings")
    env = data.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        problems.append("env must map strings to strings")
    for key in _LOCATION_KEYS:
        if data.get(key) is not None and (not isinstance(data[key], str) or not data[key]):
            problems.append(f"{key} must be a non-empty string or null")
    if data.get("snapshot_archive") and data.get("snapshot_manifest"):
        problems.append("give snapshot_archive or snapshot_manifest, not both")
    for key in ("snapshot_archive", "snapshot_manifest"):
        if data.get(key) and not data.get("outputs_uri"):
            problems.append(f"{key} needs outputs_uri, or ./outputs would be lost with the temp folder")
    if data.get("snapshot_manifest") and not data.get("objects_uri"):
        problems.append("snapshot_manifest needs objects_uri, where the snapshot's file contents are")
    return problems


def _is_relative_posix(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and "\\" not in path and ".." not in parts


# --- locations ---------------------------------------------------------------------------------


def _local_path(location: str) -> str | None:
    """The local file a location names (a plain path, ``file:/x`` or ``file:///x``), else None."""
    match = _SCHEME.match(location)
    if match is None:
        return location
    if match.group(1).lower() == "file":
        return url2pathname(urlparse(location).path)
    return None


def _child_uri(folder_uri: str, relative: str) -> str:
    """``relative`` inside a folder URI; appending (not rstrip) keeps ``wasbs:///x`` intact."""
    return (folder_uri if folder_uri.endswith("/") else folder_uri + "/") + relative


def _brief(exc: BaseException) -> str:
    """One line about an error; a Py4JJavaError's str() is a whole Java stack trace."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        return str(java.toString())
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _say(message: str) -> None:
    print(f"sparkjobs bootstrap: {message}", file=sys.stderr, flush=True)


# --- the JVM: Hadoop filesystems and the SparkContext ------------------------------------------


class _Spark:
    """The bootstrap's handle on Spark's JVM, made only when something needs it.

    The bootstrap's own storage I/O (spec, credentials, log, outputs) uses a Hadoop configuration
    built the way SparkContext builds its own (``SparkHadoopUtil.newConfiguration`` over the
    submitted Spark conf) plus the run's credentials, and private ``FileSystem.newInstance``
    instances. So it works whether or not the user's script has stopped its context (a second
    SparkContext is impossible in yarn-cluster mode), and closing them never closes the cached
    filesystems the script uses.
    """

    def __init__(self, *, plain_local_files: bool | None = None) -> None:
        #: Local locations with plain file operations rather than Hadoop: by default only when
        #: spark-submit did not start this process, so there is no JVM to ask.
        self.plain_local_files = not self.in_spark_submit() if plain_local_files is None else plain_local_files
        self._settings: dict[str, str] = {}
        self._conf: Any = None
        self._filesystems: dict[tuple[str, str], Any] = {}
        self._owned_context: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def in_spark_submit() -> bool:
        """Whether spark-submit started this process (its JVM gateway is waiting for us).

        Without it, pyspark would launch a JVM of its own: worth it for URIs only Hadoop can
        reach, not for a plain-Python local run.
        """
        return "PYSPARK_GATEWAY_PORT" in os.environ

    def context(self) -> Any:
        """The running SparkContext, created (and later stopped) by the bootstrap if none runs."""
        from pyspark import SparkContext

        active = SparkContext._active_spark_context
        if active is not None:
            return active
        self._owned_context = SparkContext.getOrCreate()
        return self._owned_context

    def add_hadoop_settings(self, settings: dict[str, str]) -> None:
        """Set Hadoop keys on the context the script will share, and on the bootstrap's own conf."""
        configuration = self.context()._jsc.hadoopConfiguration()
        with self._lock:
            self._settings.update(settings)
            for key, value in settings.items():
                configuration.set(key, value)
                if self._conf is not None:
                    self._conf.set(key, value)

    def read_bytes(self, uri: str) -> bytes:
        filesystem, path = self._resolve(uri)
        stream = filesystem.open(path)
        try:
            return bytes(stream.readAllBytes())
        finally:
            stream.close()

    def delete(self, uri: str) -> None:
        filesystem, path = self._resolve(uri)
        filesystem.delete(path, False)

    def upload(self, local: str, uri: str) -> None:
        """Copy one local file to ``uri``, replacing what is there."""
        plain = self._plain_path(uri)
        if plain is not None:
            os.makedirs(os.path.dirname(plain) or ".", exist_ok=True)
            shutil.copyfile(local, plain)
            return
        filesystem, path = self._resolve(uri)
        source = self._jvm().org.apache.hadoop.fs.Path(os.path.abspath(local))
        filesystem.copyFromLocalFile(False, True, source, path)

    def download(self, uri: str, local: str) -> None:
        """Copy ``uri`` to the local file ``local`` (its folder must exist)."""
        plain = self._plain_path(uri)
        if plain is not None:
            shutil.copyfile(plain, local)
            return
        filesystem, path = self._resolve(uri)
        target = self._jvm().org.apache.hadoop.fs.Path(os.path.abspath(local))
        filesystem.copyToLocalFile(False, path, target, True)  # raw local FS: no .crc file beside it

    def _plain_path(self, uri: str) -> str | None:
        """The local file to use with plain file operations, when there is no JVM to go through."""
        return _local_path(uri) if self.plain_local_files else None

    def close(self) -> None:
        """Close the bootstrap's filesystems, then stop the context only if the bootstrap made it."""
        for filesystem in self._filesystems.values():
            try:
                filesystem.close()
            except Exception as exc:  # py4j errors vary by state; exiting matters more than a close
                _say(f"could not close a filesystem: {_brief(exc)}")
        self._filesystems.clear()
        if self._owned_context is not None and self._owned_context._jsc is not None:
            self._owned_context.stop()

    def _jvm(self) -> Any:
        from pyspark import SparkContext

        SparkContext._ensure_initialized()  # connects to spark-submit's JVM; creates no context
        return SparkContext._jvm

    def _resolve(self, uri: str) -> tuple[Any, Any]:
        """A private filesystem for the URI's scheme and authority, and the URI as a Hadoop Path."""
        jvm = self._jvm()
        path = jvm.org.apache.hadoop.fs.Path(uri)
        parsed = urlparse(uri)
        key = (parsed.scheme.lower(), parsed.netloc)
        with self._lock:
            if self._conf is None:
                spark_conf = jvm.org.apache.spark.SparkConf()
                self._conf = jvm.org.apache.spark.deploy.SparkHadoopUtil.get().newConfiguration(spark_conf)
                for name, value in self._settings.items():
                    self._conf.set(name, value)
            if key not in self._filesystems:
                filesystem = jvm.org.apache.hadoop.fs.FileSystem.newInstance(path.toUri(), self._conf)
                filesystem.setWriteChecksum(False)  # no .crc files beside outputs on file:// targets
                self._filesystems[key] = filesystem
            return self._filesystems[key], path


def _read_json(location: str, spark: _Spark, what: str) -> Any:
    """Decode a JSON file; error messages never quote the content (it may be a secret).

    A plain path or ``file:`` URI is read with open(), needing no JVM; anything else goes
    through Hadoop with the cluster's own configuration.
    """
    local = _local_path(location)
    try:
        if local is not None:
            with open(local, "rb") as handle:
                raw = handle.read()
        else:
            raw = spark.read_bytes(location)
    except Exception as exc:  # OSError locally, Py4JJavaError through Hadoop: both mean unreadable
        raise BootstrapError(f"Cannot read the {what} at {location}: {_brief(exc)}.") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        raise BootstrapError(f"The {what} at {location} is not valid UTF-8 JSON.") from None


# --- steps ---------------------------------------------------------------------------------------


def _load_spec(location: str, spark: _Spark) -> LaunchSpec:
    if _local_path(location) is None:
        # The spec is on cluster storage, so this is a cluster run: yarn-cluster mode fails an
        # application whose main file never creates a SparkContext, so make it now.
        spark.context()
    return LaunchSpec.from_json(_read_json(location, spark, "launch spec"))


def _apply_credentials(uri: str, spark: _Spark, mask: list[bytes]) -> None:
    """Move the credentials file's Hadoop settings into the run, then delete the file; ``mask``
    receives the strings the driver log must never hold."""
    try:
        data = _read_json(uri, spark, "credentials file")
    except BootstrapError as exc:
        raise BootstrapError(
            f"{exc} It is deleted once read, so a retried attempt finds it gone: submit with "
            "spark.yarn.maxAppAttempts=1."
        ) from None
    finally:
        _delete_credentials(uri, spark)
    forms = data.get("mask", []) if isinstance(data, dict) else None
    if not isinstance(forms, list) or not all(isinstance(form, str) and form for form in forms):
        raise BootstrapError(f"The credentials file at {uri} must hold its 'mask' as a list of strings.")
    mask.extend(sorted((form.encode() for form in forms), key=len, reverse=True))
    if not _Spark.in_spark_submit():
        _say("no Spark in this process (not started by spark-submit); the credentials were not needed.")
        return
    settings = data.get("hadoop") if isinstance(data, dict) else None
    if not isinstance(settings, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in settings.items()
    ):
        raise BootstrapError(f'The credentials file at {uri} must hold {{"hadoop": {{"key": "value", ...}}}}.')
    if not settings:
        return  # only secrets to mask: no reason to make a SparkContext here
    configuration = spark.context()._jsc.hadoopConfiguration()
    for host, shown_by in sorted(_cluster_access(settings, configuration).items()):
        _say(
            f"the cluster already has access to storage account {host.split('.')[0]} ({shown_by} is set), "
            f"so sparkjobs leaves it as it is and does not set its own credentials for {host}"
        )
        settings = {key: value for key, value in settings.items() if _credential_host(key) != host}
    if not settings:
        return
    spark.add_hadoop_settings(settings)
    _say(f"set {len(settings)} Hadoop credential setting(s): {', '.join(sorted(settings))}")


#: Where a cluster keeps its own key for an account host (then ``.<host>``): the key itself, or
#: the setting that says how to read it (HDInsight: an encrypted key and ShellDecryptionKeyProvider).
_KEY_SETTINGS = ("fs.azure.account.key.", "fs.azure.account.keyprovider.")
_CREDENTIAL_SETTING = re.compile(r"^fs\.azure\.(?:account\.key|sas\.[^.]+)\.(?P<host>[^.]+\.(?:blob|dfs)\..+)$")


def _credential_host(key: str) -> str | None:
    """The account host a credential setting is for: ``acct.blob.core.windows.net`` for both
    ``fs.azure.account.key.acct.blob.core.windows.net`` and ``fs.azure.sas.CONTAINER.acct.blob...``."""
    match = _CREDENTIAL_SETTING.match(key)
    return match.group("host") if match else None


def _cluster_access(settings: dict[str, str], configuration: Any) -> dict[str, str]:
    """The account hosts among ``settings`` that the cluster's Hadoop configuration already
    reaches, each with the setting that shows it (a name, never a value).

    Access is a key or key provider for the host (``getPassword`` also finds a key kept in a
    Hadoop credential provider), for abfs hosts an auth type other than SharedKey (OAuth, a SAS
    token provider, a custom one; per host or for all), and for wasb hosts a container SAS.
    Setting a plain key over such access would break it or change it: with a key provider every
    later FileSystem hands the plain key to the decrypt script. So those hosts are left alone.
    """
    found: dict[str, str] = {}
    for host in sorted({h for h in map(_credential_host, settings) if h}):
        shown = next(
            (name for name in (p + host for p in _KEY_SETTINGS)
             if configuration.get(name) is not None or _has_password(configuration, name)),
            None,
        )
        if shown is None and ".dfs." in host:
            for name in ("fs.azure.account.auth.type." + host, "fs.azure.account.auth.type"):
                value = configuration.get(name)
                if value is not None:
                    shown = name if value.strip().lower() != "sharedkey" else None
                    break
        if shown is None:
            sas = configuration.getValByRegex("^fs\\.azure\\.sas\\.[^.]+\\." + host.replace(".", "\\.") + "$")
            shown = min((str(name) for name in sas), default=None) if sas is not None else None
        if shown is not None:
            found[host] = shown
    return found


def _has_password(configuration: Any, name: str) -> bool:
    """Whether a Hadoop credential provider holds ``name``; a provider that fails to open says no."""
    try:
        return configuration.getPassword(name) is not None
    except Exception:  # Py4JJavaError (an IOException from a provider): the plain conf already said no
        return False


def _delete_credentials(uri: str, spark: _Spark) -> None:
    local = _local_path(uri)
    try:
        if local is not None:
            os.remove(local)
        else:
            spark.delete(uri)
    except FileNotFoundError:
        pass  # nothing at rest: what deleting is for
    except Exception as exc:  # OSError or Py4JJavaError; the run can go on, but the user must know
        _say(f"could not delete the credentials file {uri}: {_brief(exc)}; delete it by hand.")


def _prepare_snapshot(spec: LaunchSpec, spark: _Spark, work: str) -> str:
    """Make the snapshot the working folder and return its root."""
    if spec.snapshot_archive is None and spec.snapshot_manifest is None:
        return os.getcwd()
    root = os.path.join(work, "snapshot")
    if spec.snapshot_archive is not None:
        _extract(_find_archive(spec.snapshot_archive), root)
    else:
        assert spec.objects_uri is not None  # the spec's validation requires it
        files = _manifest_files(_read_json(spec.snapshot_manifest, spark, "snapshot manifest"), spec.snapshot_manifest)
        _copy_objects(files, spec.objects_uri, root, spark)
        _ship_modules(files, root, work, spark)
    os.chdir(root)
    return root


@dataclass(frozen=True)
class _ManifestFile:
    path: str
    size: int
    sha256: str
    executable: bool


def _manifest_files(data: Any, where: str | None) -> list[_ManifestFile]:
    """The files a snapshot manifest lists (``{"files": [{"path", "size", "sha256", "executable"}]}``),
    every entry checked: a path that is absolute or holds ``..`` could write outside the snapshot."""
    entries = data.get("files") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise BootstrapError(f"The snapshot manifest at {where} has no 'files' list.")
    files, problems = [], []
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not _is_relative_posix(path) or "" in path.split("/") or "." in path.split("/"):
            problems.append(f"unsafe path {path!r}")
            continue
        size, sha = entry.get("size"), entry.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(sha, str) or not _SHA256.match(sha):
            problems.append(f"{path}: bad size or sha256")
            continue
        files.append(_ManifestFile(path, size, sha, entry.get("executable") is True))
    if problems:
        raise BootstrapError(f"The snapshot manifest at {where} is invalid: " + "; ".join(problems[:5]) + ".")
    return files


def _copy_objects(files: list[_ManifestFile], objects_uri: str, root: str, spark: _Spark) -> None:
    """Copy each file's object into root, checking size and SHA-256, in a small thread pool."""
    for folder in sorted({root} | {os.path.dirname(os.path.join(root, *f.path.split("/"))) for f in files}):
        os.makedirs(folder, exist_ok=True)

    def fetch(entry: _ManifestFile) -> str | None:
        target = os.path.join(root, *entry.path.split("/"))
        source = _child_uri(objects_uri, f"{entry.sha256[:2]}/{entry.sha256}")
        try:
            spark.download(source, target)
        except Exception as exc:  # OSError or Py4JJavaError: say which file, then stop the run
            return f"{entry.path} ({source}): {_brief(exc)}"
        if os.path.getsize(target) != entry.size or _sha256_of(target) != entry.sha256:
            return f"{entry.path}: the stored object does not match the manifest"
        if entry.executable:
            os.chmod(target, 0o755)
        return None

    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        failed = [problem for problem in pool.map(fetch, files) if problem]
    if failed:
        raise BootstrapError(f"Cannot copy {len(failed)} snapshot file(s) from storage: " + "; ".join(failed[:3]) + ".")
    _say(f"copied {len(files)} snapshot file(s) ({sum(f.size for f in files)} bytes) from {objects_uri}")


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _module_paths(files: list[_ManifestFile]) -> list[str]:
    """What executors may import: every .py file, and every file inside a package folder."""
    packages = {f.path.rsplit("/", 1)[0] for f in files if f.path.endswith("/__init__.py")}
    return sorted(
        f.path for f in files if f.path.endswith(".py") or ("/" in f.path and f.path.rsplit("/", 1)[0] in packages)
    )


def _ship_modules(files: list[_ManifestFile], root: str, work: str, spark: _Spark) -> None:
    """Zip the snapshot's Python files and add them to the SparkContext for executors."""
    modules = _module_paths(files)
    if not modules or not _Spark.in_spark_submit():
        return  # no executors without spark-submit
    archive = os.path.join(work, "snapshot-modules.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in modules:
            bundle.write(os.path.join(root, *path.split("/")), path)
    spark.context().addPyFile(archive)


def _find_archive(name: str) -> str:
    """Where Spark put the archive shipped in pyFiles.

    yarn-cluster mode localises pyFiles into the container's working folder; client and local
    modes put their paths on sys.path (PYTHONPATH) and copy them under SparkFiles.
    """
    base = os.path.basename(name)
    candidates = [name, os.path.join(os.getcwd(), base)]
    for entry in sys.path:
        candidates.append(entry if os.path.basename(entry) == base else os.path.join(entry or ".", base))
    candidates.extend(_spark_files(base))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise BootstrapError(
        f"The snapshot archive {name} is not in the working folder, on sys.path or among SparkFiles; "
        "ship it with --py-files (Livy: pyFiles)."
    )


def _spark_files(base: str) -> list[str]:
    """SparkFiles' copy of a shipped file; SparkFiles needs a running context, so none without."""
    if "pyspark" not in sys.modules:
        return []
    from pyspark import SparkContext, SparkFiles

    if SparkContext._active_spark_context is None:
        return []
    return [SparkFiles.get(base)]


def _extract(archive: str, root: str) -> None:
    """Unpack the archive (zipfile refuses absolute and '..' names), keeping executable bits."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                target = bundle.extract(info, root)
                mode = (info.external_attr >> 16) & 0o777
                if mode & 0o111 and not info.is_dir():
                    os.chmod(target, mode)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BootstrapError(f"Cannot unpack the snapshot archive {archive}: {exc}.") from None


def _set_sys_path(root: str, script_path: str) -> None:
    """Imports resolve as for ``python script`` run in the project root.

    The script's folder comes first (as Python does it), then the snapshot root, so the
    project's own modules import from either; the bootstrap's own folder is removed so it
    cannot shadow a user module.
    """
    own = os.path.dirname(os.path.abspath(__file__))
    entries = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != own]
    first = [os.path.dirname(script_path)]
    if root not in first:
        first.append(root)
    sys.path[:] = first + [entry for entry in entries if entry not in first]


def _run_script(script: str, args: tuple[str, ...], root: str) -> int:
    """Run the script as ``__main__`` and turn how it ended into an exit code."""
    path = os.path.join(root, *script.split("/"))
    if not os.path.isfile(path):
        _say(f"the script {script} is not in the snapshot at {root}.")
        return EXIT_BOOTSTRAP
    sys.argv = [script, *args]
    _set_sys_path(root, path)
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc.code)
    except BaseException as exc:  # noqa: BLE001 - any failure (even KeyboardInterrupt) is the run's result; outputs must still ship
        _print_user_traceback(exc, path)
        return 1
    finally:
        _flush_stdio()
    return 0


def _exit_code(code: Any) -> int:
    """What ``sys.exit(code)`` would make of ``code``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_user_traceback(exc: BaseException, script_path: str) -> None:
    """The traceback from the script's first frame down, as ``python script`` would print it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script_path:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__, file=sys.stderr)


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(Exception):  # a script may leave closed or odd streams behind
                stream.flush()


def _ship_outputs(spark: _Spark, local_dir: str, uri: str, digests: dict[str, str]) -> bool:
    """Copy every regular file under ``local_dir`` to ``uri``; False when some could not be copied
    or were refused: a symbolic link (``./outputs`` itself included) is named, never followed.

    ``digests`` receives the SHA-256 of each file copied, so the submitter can record the
    artifacts without downloading them again."""
    if os.path.islink(local_dir):
        _say(f"./outputs is a symbolic link to {os.readlink(local_dir)}; links are never followed, so no outputs were copied")
        return False
    same = _local_path(uri)
    if same is not None and os.path.realpath(same) == os.path.realpath(local_dir):
        return True  # already there; copying a file onto itself would truncate it
    files, refused = _files_under(local_dir)
    for relative, why in refused:
        _say(f"outputs/{relative} was not copied: it is {why}")
    copied, failed = 0, len(refused)
    for relative in files:
        try:
            spark.upload(os.path.join(local_dir, relative), _child_uri(uri, relative))
            digests[relative] = _sha256_of(os.path.join(local_dir, relative))
            copied += 1
        except Exception as exc:  # Py4JJavaError per file; one bad file must not stop the others
            failed += 1
            _say(f"could not copy outputs/{relative} to {uri}: {_brief(exc)}")
    _say(f"copied {copied} file(s) from ./outputs to {uri}" + (f"; {failed} failed" if failed else ""))
    return failed == 0


def _files_under(folder: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Relative POSIX paths of the regular files under ``folder``, sorted, and of what is refused
    with the reason: a symbolic link (never followed: it could point at any file the driver can
    read) or a special file."""
    found, refused = [], []
    for parent, dirs, files in os.walk(folder):  # does not descend into linked folders
        for name in sorted(dirs + files):
            path = os.path.join(parent, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if os.path.islink(path):
                refused.append((relative, f"a symbolic link to {os.readlink(path)}, which is not followed"))
            elif os.path.isfile(path):
                found.append(relative)
            elif not os.path.isdir(path):
                refused.append((relative, "not a regular file"))
    return sorted(found), sorted(refused)


# --- the driver log --------------------------------------------------------------------------


class _Tee:
    """Copies file descriptors 1 and 2 into a log file while still writing them to the console.

    Working on descriptors rather than ``sys.stdout`` catches what child processes and C code
    write too. One pipe and one pump thread per descriptor keep stdout and stderr apart on the
    console.
    """

    def __init__(self, path: str, mask: list[bytes] | None = None) -> None:
        self.path = path
        self._mask = mask if mask is not None else []  # filled in once the credentials are read
        self._log = open(path, "ab", buffering=0)  # noqa: SIM115 - open from start() to stop()
        self._size = 0
        self._lock = threading.Lock()
        self._saved: dict[int, int] = {}
        self._pumps: list[threading.Thread] = []

    def start(self) -> None:
        _flush_stdio()
        for fd in (1, 2):
            self._saved[fd] = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            pump = threading.Thread(target=self._pump, args=(read_end, self._saved[fd]), daemon=True)
            pump.start()
            self._pumps.append(pump)
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)  # a pipe would otherwise hold lines back

    def stop(self) -> None:
        """Restore the descriptors and drain the pipes (bounded: a lingering child may hold one)."""
        _flush_stdio()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # closes the pipe's write end held at fd
        for pump, saved in zip(self._pumps, self._saved.values()):
            pump.join(timeout=5)
            if not pump.is_alive():
                os.close(saved)  # a pump still fed by a lingering child keeps its console
        with self._lock:
            self._log.close()

    def _pump(self, read_end: int, console: int) -> None:
        """Console gets bytes as they come; the log gets whole lines, so the streams interleave
        there line by line (Python writes a print's text and its newline separately)."""
        pending = b""
        console_open = True
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                if console_open:
                    try:
                        _write_all(console, chunk)
                    except OSError:
                        console_open = False  # keep draining: a full pipe would block the script
                whole, pending = _whole_lines(pending + chunk)
                if whole:
                    self._record(whole)
        if pending:
            self._record(pending)

    def _record(self, chunk: bytes) -> None:
        for form in list(self._mask):  # whole lines come here, so a secret is never cut in two
            chunk = chunk.replace(form, b"***")
        with self._lock:
            room = LOG_CAP_BYTES - self._size
            if not self._log.closed and room > 0:
                self._log.write(chunk[:room])
                self._size += min(room, len(chunk))
                if self._size >= LOG_CAP_BYTES:
                    self._log.write(b"\n[sparkjobs: driver log truncated here; the console has the rest]\n")


def _whole_lines(data: bytes) -> tuple[bytes, bytes]:
    """Split into complete lines and the rest; a rest past 64 KiB (one huge line, or a progress
    bar redrawn with carriage returns) is not held back any longer."""
    if len(data) > 65536:
        return data, b""
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Every:
    """Calls ``action`` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, interval: float, action: Callable[[], None]) -> None:
        self._interval = interval
        self._action = action
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self._interval + 30)  # bounded: a hung upload must not hang exit

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            self._action()


class _LogUploader:
    """Sends the local driver log to ``uri``, replacing the previous copy; says so once if it fails."""

    def __init__(self, spark: _Spark, local: str, uri: str) -> None:
        self._spark, self._local, self._uri = spark, local, uri
        self._warned = False

    def __call__(self) -> None:
        try:
            self._spark.upload(self._local, self._uri)
        except Exception as exc:  # Py4JJavaError: storage trouble must not kill the run it logs
            if not self._warned:
                self._warned = True
                _say(f"could not save the driver log to {self._uri}: {_brief(exc)}")


@contextlib.contextmanager
def _driver_log(uri: str | None, spark: _Spark, work: str, mask: list[bytes] | None = None) -> Iterator[None]:
    """Tee the process's output to ``uri`` while the block runs, and upload it once more after;
    what ``mask`` holds (now or later) is replaced by ``***`` in it."""
    if not uri:
        yield
        return
    tee = _Tee(os.path.join(work, "driver.log"), mask)
    upload = _LogUploader(spark, tee.path, uri)
    periodic = _Every(LOG_INTERVAL_SECONDS, upload)
    tee.start()
    periodic.start()
    try:
        yield
    finally:
        periodic.stop()
        tee.stop()
        upload()


# --- main ---------------------------------------------------------------------------------------


def _launch(spec: LaunchSpec, spark: _Spark, work: str, digests: dict[str, str], mask: list[bytes]) -> int:
    """Steps 1 to 6: credentials, snapshot, environment, script, outputs."""
    try:
        if spec.credentials_uri:
            _apply_credentials(spec.credentials_uri, spark, mask)
        root = _prepare_snapshot(spec, spark, work)
    except BootstrapError as exc:
        _say(str(exc))
        return EXIT_BOOTSTRAP
    os.environ.update(spec.env)
    outputs = os.path.abspath("outputs")  # absolute: the script may chdir
    os.makedirs(outputs, exist_ok=True)
    _say(f"run {spec.run_id}: running {spec.script}")
    code = _run_script(spec.script, spec.args, root)
    if spec.outputs_uri and not _ship_outputs(spark, outputs, spec.outputs_uri, digests) and code == 0:
        code = 1  # a run whose outputs were not all saved is not a success
    return code


def _write_exit(spec: LaunchSpec, code: int, digests: dict[str, str], spark: _Spark, work: str) -> None:
    """Record the exit code in storage, after the log and outputs: a submitter that finds this
    file knows how the run ended even when Livy has forgotten the batch."""
    local = os.path.join(work, "exit.json")
    with open(local, "w", encoding="utf-8") as handle:
        json.dump({"run_id": spec.run_id, "exit_code": code, "outputs_sha256": digests}, handle)
    try:
        spark.upload(local, spec.exit_uri)
    except Exception as exc:  # OSError or Py4JJavaError: the submitter then only has Livy's word
        _say(f"could not save the exit code to {spec.exit_uri}: {_brief(exc)}")


def main(argv: list[str]) -> int:
    """Run one launch spec and return the exit code for the process."""
    if len(argv) != 1:
        _say("usage: driver.py LAUNCH_SPEC (a path or URI of the launch spec JSON)")
        return EXIT_BOOTSTRAP
    spark = _Spark()
    start_dir = os.getcwd()
    work = tempfile.mkdtemp(prefix="sparkjobs-bootstrap-")
    try:
        try:
            spec = _load_spec(argv[0], spark)
        except BootstrapError as exc:
            _say(str(exc))
            return EXIT_BOOTSTRAP
        digests: dict[str, str] = {}
        mask: list[bytes] = []
        with _driver_log(spec.log_uri, spark, work, mask):
            code = _launch(spec, spark, work, digests, mask)
        if spec.exit_uri:
            _write_exit(spec, code, digests, spark, work)
        return code
    finally:
        os.chdir(start_dir)
        spark.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
