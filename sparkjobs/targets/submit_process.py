"""A spark-submit (or python) child process: start it, stream it, stop it. Shared by the
local and spark targets.

The job runs under ``_supervisor.py`` as the leader of its own process group and session, so a
terminal's Ctrl-C reaches sparkjobs only and sparkjobs decides how to stop the job; the
supervisor ends the group if sparkjobs dies, and writes the job's end to ``exit.json``.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import TargetError
from ..packages import MARKS, PackageResolution
from ..runs import RunStatus
from .base import Execution, LineSink, Outcome

__all__ = ["ProcessExecution", "SUPERVISOR_PATH", "EXIT_FILE", "BOOTSTRAP_ERROR_FILE", "read_exit_file", "outcome_from_exit"]

SUPERVISOR_PATH = Path(__file__).with_name("_supervisor.py")
EXIT_FILE = "exit.json"
#: Beside it: why the bootstrap stopped the run before the script ran (e.g. the wrong Python).
BOOTSTRAP_ERROR_FILE = "bootstrap-error.txt"
_GRACE_SECONDS = 10
#: After the job's main process has ended, how long output still held open by a process that
#: escaped its group may keep the run from finishing.
_DRAIN_SECONDS = 5.0


def read_exit_file(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("exit_code"), int) else None


def outcome_from_exit(code: int | None, killed: bool, outputs: Path | None, reason: str | None = None) -> Outcome:
    """The run's outcome from the job's exit code, the same however the kill was timed."""
    if killed:
        # A stopped job has no exit code of its own: spark-submit reports 143, 137 or -15
        # depending on which process the signal reached first.
        return Outcome(RunStatus.KILLED, None, reason or "Stopped by the user.", outputs)
    if code == 0:
        return Outcome(RunStatus.COMPLETED, 0, None, outputs)
    if code is None:
        return Outcome(RunStatus.FAILED, None, reason or "The job's exit code is unknown.", outputs)
    return Outcome(RunStatus.FAILED, code, reason or f"The job exited with code {code}.", outputs)


class ProcessExecution(Execution):
    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], outputs: Path | None,
                 exit_file: Path, packages: PackageResolution | None = None) -> None:
        self._outputs = outputs
        self._exit_file = exit_file
        self._packages = packages
        self._clues: list[str] = []  # spark-submit's lines on packages it could not resolve
        self._killed = threading.Event()
        supervised = [sys.executable, "-S", str(SUPERVISOR_PATH), str(exit_file), "--", *argv]
        try:
            self._process = subprocess.Popen(
                supervised,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                # Two pipes, not one: spark-submit's JVM writes the Python driver's output (copied in
                # 1 KiB pieces) to its stdout and its own log to its stderr; in one pipe a log line
                # landed inside a line the script printed, under load.
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise TargetError(f"Could not start {argv[0]}: {exc.strerror or exc}.") from exc
        self.details = {"pid": str(self._process.pid)}

    def stream(self, sink: LineSink) -> None:
        """Deliver lines from stdout and stderr, each whole, until both close, or shortly after
        the job has ended even if a process that escaped its group still holds one open."""
        assert self._process.stdout is not None and self._process.stderr is not None
        pending: dict[int, bytes] = {}
        with selectors.DefaultSelector() as selector:
            for pipe in (self._process.stdout, self._process.stderr):
                selector.register(pipe, selectors.EVENT_READ)
                pending[pipe.fileno()] = b""
            drain_until: float | None = None
            while selector.get_map():
                if drain_until is None and self._process.poll() is not None:
                    drain_until = time.monotonic() + _DRAIN_SECONDS
                timeout = 0.2 if drain_until is None else max(0.0, drain_until - time.monotonic())
                ready = selector.select(timeout)
                if not ready:
                    if drain_until is not None and time.monotonic() >= drain_until:
                        break
                    continue
                for key, _ in ready:
                    fd = key.fd
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    *lines, pending[fd] = (pending[fd] + chunk).split(b"\n")
                    for raw in lines:
                        self._deliver(sink, raw)
        for rest in pending.values():
            if rest:
                self._deliver(sink, rest)

    def _deliver(self, sink: LineSink, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if self._packages is not None and any(m in line for m in MARKS) and len(self._clues) < 20:
            self._clues.append(line)
        sink(line)

    def wait(self) -> Outcome:
        returncode = self._process.wait()
        ended = read_exit_file(self._exit_file)
        code = ended["exit_code"] if ended else (128 - returncode if returncode < 0 else returncode)
        outcome = outcome_from_exit(code, self._killed.is_set(), self._outputs)
        why = self._packages.explain(self._clues) if self._packages and code else None
        why = (self._bootstrap_error() if code else None) or why
        return replace(outcome, error=why) if why and not self._killed.is_set() else outcome

    def _bootstrap_error(self) -> str | None:
        try:
            return self._exit_file.with_name(BOOTSTRAP_ERROR_FILE).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def kill(self) -> None:
        """Ask the supervisor to stop the job's group; SIGKILL the group after a grace period."""
        self._killed.set()
        if self._process.poll() is not None:
            return
        try:
            os.kill(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=_GRACE_SECONDS)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            self.kill_now()

    def kill_now(self) -> None:
        """SIGKILL the whole group at once: the user asked twice."""
        self._killed.set()
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
