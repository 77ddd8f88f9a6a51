"""The driver log: the process's output teed to a file and sent to storage as the run goes."""
from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Iterator

from .console import brief, flush_stdio, say
from .hadoop import Spark

__all__ = ["LOG_CAP_BYTES", "LOG_INTERVAL_SECONDS", "driver_log"]

LOG_INTERVAL_SECONDS = 10.0
#: Past this size the driver log keeps a marker instead of more text; the console still gets it
#: all. Every periodic upload sends the whole file, so an unbounded log would make them unbounded.
LOG_CAP_BYTES = 64 * 1024 * 1024
#: How long a partial line waits for its end before the console gets it as it is: Python
#: writes a print's parts microseconds apart; a progress bar redraws every 100 ms or more.
PARTIAL_LINE_SECONDS = 0.05
#: How long stopping waits for a pump that moves nothing: a child that outlives the job (a
#: daemon it started) may hold the pipe open for good.
IDLE_PUMP_SECONDS = 5.0
#: How long stopping waits in all for the last output to reach a console that reads slowly.
STOP_LIMIT_SECONDS = 300.0


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
        # Both pumps write to the same console (spark-submit merges the driver's stdout and
        # stderr): one chunk at a time, so a long write of one is never cut by the other's.
        self._console_lock = threading.Lock()
        self._saved: dict[int, int] = {}
        self._pumps: list[threading.Thread] = []
        self._moved: dict[int, float] = {}  # per descriptor, when its pump last moved output
        self._writing: set[int] = set()  # descriptors whose pump is writing to the console now

    def start(self) -> None:
        flush_stdio()
        for fd in (1, 2):
            self._saved[fd] = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            self._moved[fd] = time.monotonic()
            pump = threading.Thread(target=self._pump, args=(fd, read_end, self._saved[fd]), daemon=True)
            pump.start()
            self._pumps.append(pump)
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)  # a pipe would otherwise hold lines back

    def stop(self) -> None:
        """Restore the descriptors and drain the pipes (bounded: a lingering child may hold one)."""
        flush_stdio()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # closes the pipe's write end held at fd
        limit = time.monotonic() + STOP_LIMIT_SECONDS
        for pump, (fd, saved) in zip(self._pumps, self._saved.items()):
            self._join(pump, fd, limit)
            if not pump.is_alive():
                os.close(saved)  # a pump still fed by a lingering child keeps its console
        with self._lock:
            self._log.close()

    def _join(self, pump: threading.Thread, fd: int, limit: float) -> None:
        """Wait for a pump while it still moves output, however slowly the console reads: the
        process exits once this returns, and the daemon pump with the lines it holds. Only a pump
        idle in a read for IDLE_PUMP_SECONDS is left behind."""
        while pump.is_alive() and time.monotonic() < limit:
            pump.join(timeout=0.05)
            if fd not in self._writing and time.monotonic() - self._moved[fd] > IDLE_PUMP_SECONDS:
                return

    def _pump(self, fd: int, read_end: int, console: int) -> None:
        """Both the console and the log get whole lines. spark-submit gives the driver one pipe
        for stdout and stderr, and Python unbuffered writes a print's parts one by one, so
        bytes passed on as they came let the other pump's line land inside this one's. A partial
        line (a prompt, a progress bar redrawn with a carriage return) still reaches the console
        once nothing more has come for PARTIAL_LINE_SECONDS. The log keeps waiting for the line's
        end, so a secret is never cut in two before it is masked."""
        held = b""  # for the console
        pending = b""  # for the log
        console_open = True
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while True:
                if held and not _readable(read_end, PARTIAL_LINE_SECONDS):
                    console_open = self._to_console(fd, console, held, console_open)
                    held = b""
                    continue
                chunk = pipe.read(65536)
                if not chunk:
                    break
                self._moved[fd] = time.monotonic()
                lines, held = _whole_lines(held + chunk)
                if lines:
                    console_open = self._to_console(fd, console, lines, console_open)
                whole, pending = _whole_lines(pending + chunk)
                if whole:
                    self._record(whole)
        if held:
            self._to_console(fd, console, held, console_open)
        if pending:
            self._record(pending)

    def _to_console(self, fd: int, console: int, data: bytes, console_open: bool) -> bool:
        """Write to the console, one pump at a time; False once the console is gone (the pump
        keeps draining its pipe: a full pipe would block the script)."""
        if not console_open:
            return False
        self._writing.add(fd)
        try:
            with self._console_lock:
                _write_all(console, data)
            return True
        except OSError:
            return False
        finally:
            self._writing.discard(fd)
            self._moved[fd] = time.monotonic()

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


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


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

    def __init__(self, spark: Spark, local: str, uri: str) -> None:
        self._spark, self._local, self._uri = spark, local, uri
        self._warned = False

    def __call__(self) -> None:
        try:
            self._spark.upload(self._local, self._uri)
        except Exception as exc:  # Py4JJavaError: storage trouble must not kill the run it logs
            if not self._warned:
                self._warned = True
                say(f"could not save the driver log to {self._uri}: {brief(exc)}")


@contextlib.contextmanager
def driver_log(uri: str | None, spark: Spark, work: str, mask: list[bytes] | None = None) -> Iterator[None]:
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
