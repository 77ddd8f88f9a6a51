"""Time helpers for polling tests: fake seconds, real milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CompressedClock", "wait_until"]


class CompressedClock:
    """A fake clock whose ``sleep(s)`` advances ``s`` fake seconds but sleeps only ``real`` s.

    Polls then follow the client's real schedule (5 s intervals, deadlines) while the test
    takes milliseconds; the server's processes still get real time to make progress.
    """

    def __init__(self, real: float = 0.02, before_sleep: Callable[[], None] | None = None) -> None:
        self.now = 1000.0
        self.real = real
        self.sleeps: list[float] = []
        self.before_sleep = before_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.before_sleep is not None:
            self.before_sleep()
        time.sleep(self.real)
        self.now += seconds


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, step: float = 0.02) -> bool:
    """Poll ``condition`` until true or ``timeout`` real seconds pass; returns the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()
