"""Ctrl-C, SIGTERM and SIGHUP while a run is in flight, as requests the run acts on.

Python's default turns a signal into KeyboardInterrupt wherever the main thread happens to be,
including between starting a job and keeping hold of it, or halfway through writing the final
record: both once left runs recorded as running forever. Here a signal only *interrupts* while
the run is streaming output (the one place where stopping is the right response); anywhere
else it is remembered and acted on at the next safe point. A second signal escalates at once:
the job's process group is killed, and the run is still recorded.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["StopRequests"]

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopRequests:
    def __init__(self) -> None:
        self.count = 0
        self._interruptible = False
        self._escalate: Callable[[], None] | None = None
        self._previous: dict[int, object] = {}

    @contextmanager
    def installed(self) -> Iterator["StopRequests"]:
        """Own the stop signals for the duration of a run (main thread only; elsewhere the
        caller's own handling stays in force)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        try:
            yield self
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count >= 2 and self._escalate is not None:
            self._escalate()
        if self._interruptible:
            self._interruptible = False  # one interruption per region
            raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        return self.count > 0

    def escalate_with(self, action: Callable[[], None]) -> None:
        """What a second request does: kill the job at once."""
        self._escalate = action
        if self.count >= 2:
            action()

    @contextmanager
    def interruptible(self, *, pending: bool = True) -> Iterator[None]:
        """A request arriving inside raises KeyboardInterrupt here; so does one that arrived
        earlier, unless ``pending`` is False (a prompt that is already answering it)."""
        if pending and self.count:
            raise KeyboardInterrupt
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False
