"""The bootstrap's handle on Spark's JVM: Hadoop filesystems for its own storage I/O, and the
SparkContext when it must make one. pyspark is imported lazily: a plain-Python run never needs it."""
from __future__ import annotations

import json
import os
import shutil
import threading
from typing import Any
from urllib.parse import urlparse

from .console import brief, say
from .spec import BootstrapError, local_path

__all__ = ["Spark", "read_json"]


class Spark:
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
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None
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

        if self._starting is not None:  # started by start_context(): wait for it
            self._starting.join()
            self._starting = None
            if self._start_error is not None:
                raise self._start_error
        active = SparkContext._active_spark_context
        if active is not None:
            return active
        self._owned_context = SparkContext.getOrCreate()
        return self._owned_context

    def start_context(self) -> None:
        """Start creating the SparkContext in a thread (in yarn-cluster mode it takes seconds),
        while this thread goes on through the JVM: ``context()`` then waits for it. The JVM
        gateway is connected first, here, because creating the context holds pyspark's lock
        until it is done."""
        from pyspark import SparkContext

        SparkContext._ensure_initialized()
        if SparkContext._active_spark_context is not None or self._starting is not None:
            return

        def start() -> None:
            try:
                self._owned_context = SparkContext.getOrCreate()
            except BaseException as exc:  # said by context(), in the thread that needs it
                self._start_error = exc

        self._starting = threading.Thread(target=start, name="sparkjobs-spark-context", daemon=True)
        self._starting.start()

    @property
    def context_starting(self) -> bool:
        return self._starting is not None

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
            # Copied beside it, then renamed: a reader never sees the file half-written.
            partial = f"{plain}.{os.getpid()}.partial"
            shutil.copyfile(local, partial)
            os.replace(partial, plain)
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
        return local_path(uri) if self.plain_local_files else None

    def close(self) -> None:
        """Close the bootstrap's filesystems, then stop the context only if the bootstrap made it."""
        for filesystem in self._filesystems.values():
            try:
                filesystem.close()
            except Exception as exc:  # py4j errors vary by state; exiting matters more than a close
                say(f"could not close a filesystem: {brief(exc)}")
        self._filesystems.clear()
        if self._starting is not None:
            self._starting.join()
        if self._owned_context is not None and self._owned_context._jsc is not None:
            self._owned_context.stop()

    def _jvm(self) -> Any:
        from pyspark import SparkContext

        if SparkContext._jvm is None:  # its lock is held while a context is created: not needed after
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


def read_json(location: str, spark: Spark, what: str) -> Any:
    """Decode a JSON file; error messages never quote the content (it may be a secret).

    A plain path or ``file:`` URI is read with open(), needing no JVM; anything else goes
    through Hadoop with the cluster's own configuration.
    """
    local = local_path(location)
    try:
        if local is not None:
            with open(local, "rb") as handle:
                raw = handle.read()
        else:
            raw = spark.read_bytes(location)
    except Exception as exc:  # OSError locally, Py4JJavaError through Hadoop: both mean unreadable
        raise BootstrapError(f"Cannot read the {what} at {location}: {brief(exc)}.") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        raise BootstrapError(f"The {what} at {location} is not valid UTF-8 JSON.") from None
