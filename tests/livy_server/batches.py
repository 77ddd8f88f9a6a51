"""The batch side of the Livy-protocol test server: validation, processes, ring buffers.

It follows shared/reference/livy-facts.md: a 200-line ring buffer per stream, the
``stdout/stderr/YARN Diagnostics`` log view, ids that count up (and restart at 0 when the
server "restarts"), duplicate names refused while retained, finished batches forgotten
after the retention period.  Batches run real ``spark-submit --master local[1]``; the
``python`` runner runs the file with the current interpreter instead, for tests of
polling and log buffers where Spark itself is not under test.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

__all__ = ["BadBody", "Rejected", "Record", "Registry", "RUNNERS"]

RUNNERS = ("spark-submit", "python")
TERMINAL = frozenset({"success", "dead", "killed", "error"})
BLACKLIST = (
    "spark.master",
    "spark.submit.deployMode",
    "spark.yarn.jar",
    "spark.yarn.jars",
    "spark.yarn.archive",
)
STRINGS = ("file", "proxyUser", "className", "driverMemory", "executorMemory", "queue", "name")
INTS = ("driverCores", "executorCores", "numExecutors")
LISTS = ("args", "jars", "pyFiles", "files", "archives")
KNOWN = (*STRINGS, *INTS, *LISTS, "conf")
APP_ID = re.compile(r"\b(local-\d{10,}|application_\d+_\d+)\b")
SPARK_UI = re.compile(r"(?:Web UI available at|started at) (http://\S+)")


class BadBody(ValueError):
    """Jackson could not map the body: Livy answers 400 with a bare JSON string."""


class Rejected(ValueError):
    """Livy refused the request: 400 ``{"msg": "Rejected, Reason: ..."}``."""


@dataclass
class Record:
    """One batch as the server knows it."""

    id: int
    name: str | None
    body: dict[str, Any]
    log_lines: int
    state: str = "starting"
    app_id: str | None = None
    spark_ui_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    finished_at: float | None = None
    diagnostics: list[str] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)
    created_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.stdout: deque[str] = deque(maxlen=self.log_lines)
        self.stderr: deque[str] = deque(maxlen=self.log_lines)

    def view(self) -> list[str]:
        return [
            "stdout: ",
            *self.stdout,
            "\nstderr: ",
            *self.stderr,
            "\nYARN Diagnostics: ",
            *self.diagnostics,
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": None,
            "proxyUser": self.body.get("proxyUser"),
            "state": self.state,
            "appId": self.app_id,
            "appInfo": {"driverLogUrl": None, "sparkUiUrl": self.spark_ui_url},
            "log": self.view()[-10:],
        }

    def finish(self, state: str) -> None:
        if self.state not in TERMINAL:
            self.state = state
            self.finished_at = time.monotonic()
            self.app_id = self.app_id or f"local-{int(time.time() * 1000)}"


def check_body(body: object) -> dict[str, Any]:
    """Jackson's part: unknown fields and wrong types become a bare-string 400."""
    if not isinstance(body, dict):
        raise BadBody(
            "Cannot deserialize instance of `org.apache.livy.server.batch.CreateBatchRequest` "
            "out of non-object token"
        )
    for key, value in body.items():
        if key not in KNOWN:
            known = ", ".join(f'"{k}"' for k in KNOWN)
            raise BadBody(
                f'Unrecognized field "{key}" (class org.apache.livy.server.batch.CreateBatchRequest), '
                f"not marked as ignorable ({len(KNOWN)} known properties: {known}])"
            )
        ok = (
            value is None
            or (key in STRINGS and isinstance(value, str))
            or (key in INTS and isinstance(value, int) and not isinstance(value, bool))
            or (key in LISTS and isinstance(value, list) and all(isinstance(v, str) for v in value))
            or (
                key == "conf"
                and isinstance(value, dict)
                and all(isinstance(v, str) for v in value.values())
            )
        )
        if not ok:
            raise BadBody(
                f'Cannot deserialize value of field "{key}" of CreateBatchRequest from {type(value).__name__}'
            )
    return body


def resolve(uri: str, whitelist: Sequence[str]) -> str:
    """Livy's ``Session.resolveURI``: scheme-less paths must be absolute; local ones whitelisted."""
    parts = urlsplit(uri)
    if not parts.scheme:
        if not parts.path.startswith("/"):
            raise Rejected(f"requirement failed: Path '{parts.path}' is not absolute.")
        uri, parts = "file://" + parts.path, urlsplit("file://" + parts.path)
    if parts.scheme == "file" and not any(parts.path.startswith(w) for w in whitelist):
        raise Rejected(f"Local path {parts.path} cannot be added to user sessions.")
    return uri


def local(uri: str) -> str:
    return urlsplit(uri).path if uri.startswith("file:") else uri


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """Kill our own child and its process group (it was started in a new session)."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


class Registry:
    """All batches of one server; every method is thread-safe."""

    def __init__(
        self,
        *,
        runner: str,
        whitelist: Sequence[Path],
        retention: float,
        log_lines: int,
        workdir: Path,
        state_poll: float = 0.0,
    ) -> None:
        if runner not in RUNNERS:
            raise ValueError(f"runner must be one of {RUNNERS}")
        self.runner = runner
        self.whitelist = [str(Path(p).resolve()) for p in whitelist]
        self.retention = retention
        self.log_lines = log_lines
        self.workdir = workdir
        self.state_poll = state_poll
        self._closing = threading.Event()
        self.lock = threading.RLock()
        self.records: dict[int, Record] = {}
        self.next_id = 0
        self.threads: list[threading.Thread] = []
        self._held = 0  # batches still to keep in "starting"
        self._substitutes: list[list[str]] = []  # commands to run instead of a batch's file

    # -- lookups ---------------------------------------------------------------------------

    def find(self, key: str) -> Record | None:
        with self.lock:
            self.purge()
            if key.isdigit():
                return self.records.get(int(key))
            return next((r for r in self.records.values() if r.name == key), None)

    def all(self) -> list[Record]:
        with self.lock:
            self.purge()
            return sorted(self.records.values(), key=lambda r: r.id)

    def purge(self, now: float | None = None) -> None:
        """Forget finished batches older than the retention period."""
        now = time.monotonic() if now is None else now
        with self.lock:
            for rid in [
                r.id
                for r in self.records.values()
                if r.finished_at is not None and now - r.finished_at >= self.retention
            ]:
                del self.records[rid]

    # -- changes ---------------------------------------------------------------------------

    def hold(self, count: int) -> None:
        with self.lock:
            self._held += count

    def substitute(self, argv: list[str]) -> None:
        with self.lock:
            self._substitutes.append(argv)

    def create(self, raw: object) -> Record:
        body = check_body(raw)
        if not body.get("file"):
            raise Rejected("File is required.")
        conf = body.get("conf") or {}
        bad = [k for k in conf if k in BLACKLIST]
        if bad:
            raise Rejected(f"Blacklisted configuration values in session config: {', '.join(bad)}")
        resolved = {"file": resolve(body["file"], self.whitelist)}
        for key in ("jars", "pyFiles", "files", "archives"):
            resolved[key] = [resolve(u, self.whitelist) for u in body.get(key) or []]
        with self.lock:
            self.purge()
            rid, self.next_id = self.next_id, self.next_id + 1
            name = body.get("name")
            if name is not None and any(r.name == name for r in self.records.values()):
                raise Rejected(f"Duplicate session name: Some({name}) for session {rid}")
            record = Record(rid, name, dict(body), self.log_lines)
            self.records[rid] = record
            if self._held:  # stays "starting" until deleted: nothing runs
                self._held -= 1
                return record
            argv = self._substitutes.pop(0) if self._substitutes else self._argv(body, resolved)
            thread = threading.Thread(target=self._run, args=(record, argv), daemon=True)
            self.threads.append(thread)
        thread.start()
        return record

    def delete(self, record: Record) -> None:
        with self.lock:
            self.records.pop(record.id, None)
        self.kill(record, state="killed")

    def kill(self, record: Record, *, state: str = "killed") -> None:
        """End a batch as YARN would when an application is killed."""
        with self.lock:
            if record.state not in TERMINAL:
                record.diagnostics.append("Application killed by user.")
            record.finish(state)
            proc = record.proc
        if proc is not None:
            terminate(proc)

    def expire_all(self) -> None:
        with self.lock:
            self.purge(now=time.monotonic() + self.retention + 1)

    def restart(self) -> None:
        """Forget everything and count ids from 0 again (Livy restarted, recovery off)."""
        with self.lock:
            records, self.records, self.next_id = list(self.records.values()), {}, 0
        for record in records:
            self.kill(record, state="dead")

    def shutdown(self) -> None:
        self._closing.set()
        with self.lock:
            records = list(self.records.values())
            self.records = {}
        for record in records:
            self.kill(record, state="dead")
        for thread in self.threads:
            thread.join(timeout=10)

    # -- processes -------------------------------------------------------------------------

    def _argv(self, body: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
        file, args = local(resolved["file"]), list(body.get("args") or [])
        if self.runner == "python":
            return [sys.executable, "-u", file, *args]
        argv = ["spark-submit", "--master", "local[1]"]
        conf = dict(body.get("conf") or {})
        for key, spark_key in (
            ("driverCores", "spark.driver.cores"),
            ("executorCores", "spark.executor.cores"),
            ("numExecutors", "spark.executor.instances"),
            ("queue", "spark.yarn.queue"),
        ):
            if body.get(key) is not None:
                conf[spark_key] = str(body[key])
        for key, value in conf.items():
            argv += ["--conf", f"{key}={value}"]
        for key, flag in (
            ("name", "--name"),
            ("className", "--class"),
            ("driverMemory", "--driver-memory"),
            ("executorMemory", "--executor-memory"),
        ):
            if body.get(key):
                argv += [flag, body[key]]
        for key, flag in (
            ("pyFiles", "--py-files"),
            ("files", "--files"),
            ("jars", "--jars"),
            ("archives", "--archives"),
        ):
            if resolved[key]:
                argv += [flag, ",".join(local(u) for u in resolved[key])]
        return [*argv, file, *args]

    def _run(self, record: Record, argv: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SPARK_LOCAL_IP": "127.0.0.1"}
        with self.lock:
            if record.state in TERMINAL:
                return
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=self.workdir,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                record.stderr.append(f"cannot start {argv[0]}: {exc}")
                record.finish("dead")
                return
            record.proc, record.state = proc, "running"
            if self.runner == "python":
                record.app_id = f"local-{int(time.time() * 1000)}"
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=self._pump, args=(record, pipe, buf), daemon=True)
            for pipe, buf in ((proc.stdout, record.stdout), (proc.stderr, record.stderr))
        ]
        for pump in pumps:
            pump.start()
        code = proc.wait()
        for pump in pumps:
            pump.join(timeout=10)
        if self.state_poll > 0:  # Livy on YARN sees the end at its next poll of the application,
            # whose phase is the application's own (random here)
            since = time.monotonic() - record.created_at + random.uniform(0, self.state_poll)
            self._closing.wait(self.state_poll - since % self.state_poll)
        with self.lock:
            record.finish("success" if code == 0 else "dead")

    def _pump(self, record: Record, pipe: IO[bytes], buf: deque[str]) -> None:
        with pipe:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self.lock:
                    buf.append(line)
                    record.first_seen.setdefault(line, time.monotonic())
                    # A python job may also say it runs on YARN by printing an application id.
                    placeholder = record.app_id is None or (self.runner == "python" and record.app_id.startswith("local-"))
                    if placeholder and (found := APP_ID.search(line)):
                        record.app_id = found.group(1)
                    if record.spark_ui_url is None and (ui := SPARK_UI.search(line)):
                        record.spark_ui_url = ui.group(1)
