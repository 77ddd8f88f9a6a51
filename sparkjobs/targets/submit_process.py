"""A spark-submit (or python) child process: start it, stream it, stop it. Shared by the
local and spark targets."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import TargetError
from ..runs import RunStatus
from .base import Execution, LineSink, Outcome

__all__ = ["ProcessExecution"]

_GRACE_SECONDS = 10


class ProcessExecution(Execution):
    """Runs argv in its own session, so a terminal's Ctrl-C reaches sparkjobs only, and
    sparkjobs decides how to stop the job (and records it as killed)."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], outputs: Path | None) -> None:
        self._outputs = outputs
        self._killed = threading.Event()
        try:
            self._process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise TargetError(f"Could not start {argv[0]}: {exc.strerror or exc}.") from exc
        self.details = {"pid": str(self._process.pid)}

    def stream(self, sink: LineSink) -> None:
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            sink(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    def wait(self) -> Outcome:
        code = self._process.wait()
        if self._killed.is_set():
            return Outcome(RunStatus.KILLED, code, "Stopped by the user.", self._outputs)
        if code == 0:
            return Outcome(RunStatus.COMPLETED, 0, None, self._outputs)
        return Outcome(RunStatus.FAILED, code, f"The job exited with code {code}.", self._outputs)

    def kill(self) -> None:
        """SIGTERM to the job's process group (ours alone), then SIGKILL after a grace period."""
        self._killed.set()
        if self._process.poll() is not None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=_GRACE_SECONDS)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
