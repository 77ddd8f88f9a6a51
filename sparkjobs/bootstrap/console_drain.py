"""Waiting, before the driver exits, until what it printed has left spark-submit.

spark-submit runs a Python driver as a child and copies its output to its own stdout on a
daemon thread; the JVM exits as soon as Python has, and whatever that thread still held was
lost. It happened whenever the console read slower than the job wrote (a loaded machine, a
slow pipe): the last lines of the run, the ones that say how it ended, were missing from the
console and the log. So the driver's last act is to wait until its output pipe is empty, and
the pipe the JVM writes to has room for the thread's last chunk. Only pipes are waited for (a
terminal or a file, as on YARN, holds nothing back), and only while they make progress.
"""
from __future__ import annotations

import array
import fcntl
import os
import termios
import time

__all__ = ["wait_until_output_is_read"]

_F_GETPIPE_SZ = 1032  # fcntl.F_GETPIPE_SZ, named there from Python 3.10 on Linux only
_LAST_CHUNK = 4096  # more than the JVM's copying thread holds at a time (1 KiB), and atomic in a pipe
_STEP = 0.01


def _pending(fd: int) -> int | None:
    """Bytes written to the pipe ``fd`` and not yet read; None if it is not a pipe."""
    try:
        if not (os.fstat(fd).st_mode & 0o170000 == 0o010000):  # S_IFIFO
            return None
        answer = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, answer, True)
        return answer[0]
    except OSError:
        return None


def _room(fd: int) -> int | None:
    """Free bytes in the pipe ``fd``; None if it is not a pipe or cannot be told."""
    pending = _pending(fd)
    if pending is None:
        return None
    try:
        return fcntl.fcntl(fd, _F_GETPIPE_SZ) - pending
    except OSError:
        return None


def _wait(ready, measure, stall_seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``ready()``, or until ``measure()`` has not changed for ``stall_seconds``."""
    last, since = measure(), time.monotonic()
    while not ready():
        time.sleep(_STEP)
        now = measure()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= stall_seconds:
            return


def _parents_stdout() -> int | None:
    """The pipe spark-submit's JVM writes our output to, opened without blocking, or None."""
    try:
        return os.open(f"/proc/{os.getppid()}/fd/1", os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def wait_until_output_is_read(stall_seconds: float = 30.0) -> None:
    ours = [fd for fd in (1, 2) if _pending(fd) is not None]
    if not ours:
        return
    _wait(lambda: all(not _pending(fd) for fd in ours), lambda: [_pending(fd) for fd in ours], stall_seconds)
    downstream = _parents_stdout()
    if downstream is None:
        return
    try:
        if _room(downstream) is not None:
            _wait(lambda: (_room(downstream) or 0) >= _LAST_CHUNK, lambda: _room(downstream), stall_seconds)
            time.sleep(0.05)  # the thread's write of its last chunk, now that it fits
    finally:
        os.close(downstream)
