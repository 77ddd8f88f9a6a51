"""When to poll a batch: often while a change is likely, rarely otherwise.

Livy learns a batch's state from YARN every 5 s, so polling faster in steady state learns
nothing and only loads the gateway. But a change is likely at a few moments: right after
the submission, right after a state change (``starting`` -> ``running``), and when the log
says the job is finishing. Around those moments a fast poll sees the end sooner (the user
waits less for ``sparkjobs run`` to return); the rest of the time a slow poll costs little.

:class:`Cadence` says how fast and how slow; :class:`Ticker` keeps one schedule of ticks
against a deadline, bounded even if the clock stalls. A caller that can tell cheaply, outside
Livy, that the end is likely (a job's exit record in storage) passes a probe to
:meth:`Ticker.pause`, which asks it about once a second while it waits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Cadence", "Ticker", "FINISHING", "PROBE_EVERY", "finishing_patterns"]

#: Seconds between two questions to a probe: it costs no Livy request.
PROBE_EVERY = 1.0

#: Lines a Livy log shows when the job is about to end. spark-submit's YARN client (the
#: Livy log in yarn-cluster mode) reports the application's final state; a driver in local
#: or client mode stops its SparkContext; every JVM runs its shutdown hooks last.
FINISHING = (
    r"\(state: (FINISHED|FAILED|KILLED)\)",
    r"final status: (SUCCEEDED|FAILED|KILLED)",
    r"Successfully stopped SparkContext",
    r"Invoking stop\(\) from shutdown hook",
    r"ShutdownHookManager: Shutdown hook called",
)


def finishing_patterns(extra: Iterable[str | re.Pattern[str]] = ()) -> tuple[re.Pattern[str], ...]:
    """:data:`FINISHING` and ``extra``, compiled."""
    return tuple(p if isinstance(p, re.Pattern) else re.compile(p) for p in (*FINISHING, *extra))


@dataclass(frozen=True)
class Cadence:
    """Poll every ``fast`` seconds for ``burst`` seconds after the start and after anything
    that makes a change likely, then double the interval each tick up to ``slow``.

    ``Cadence.fixed(s)`` polls every ``s`` seconds whatever happens.
    """

    fast: float = 0.5
    slow: float = 5.0
    burst: float = 10.0

    def __post_init__(self) -> None:
        if not (0 < self.fast <= self.slow and self.burst >= 0):
            raise ValueError("a cadence needs 0 < fast <= slow and burst >= 0 seconds")

    @classmethod
    def fixed(cls, interval: float) -> Cadence:
        if not interval > 0:
            raise ValueError("interval must be > 0 and timeouts >= 0 seconds")
        return cls(interval, interval, 0.0)

    @classmethod
    def of(cls, interval: float | Cadence) -> Cadence:
        return interval if isinstance(interval, Cadence) else cls.fixed(interval)


class Ticker:
    """A schedule of ticks ending at a deadline; bounded even if the clock stalls.

    ``kick()`` says a change is likely now: the next ``burst`` seconds are polled fast.
    The start counts as one.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        cadence: Cadence,
        timeout: float,
        start_timeout: float | None = None,
    ) -> None:
        if timeout < 0 or (start_timeout is not None and start_timeout < 0):
            raise ValueError("interval must be > 0 and timeouts >= 0 seconds")
        self.clock, self.sleep, self.cadence = clock, sleep, cadence
        self.next = clock()
        self.step = cadence.fast
        self.hot_until = self.next + cadence.burst
        self.deadline = self.next + timeout
        # Bounds in ticks, at the fastest rate: a loop ends even if the clock never moves.
        self.ticks_left = int(timeout / cadence.fast) + 2 if math.isfinite(timeout) else -1
        self.start_timeout = math.inf if start_timeout is None else start_timeout
        self.start_deadline = self.next + self.start_timeout
        self.start_ticks = int(start_timeout / cadence.fast) + 2 if start_timeout is not None else -1
        self.probed_at = -math.inf

    def kick(self) -> None:
        self.hot_until = self.clock() + self.cadence.burst
        self.step = self.cadence.fast

    @property
    def hot(self) -> bool:
        """Whether this is a burst of fast polls."""
        return self.clock() < self.hot_until

    def expired(self) -> bool:
        return self.clock() >= self.deadline or self.ticks_left == 0

    def start_expired(self) -> bool:
        return self.clock() >= self.start_deadline or self.start_ticks == 0

    def pause(self, probe: Callable[[], bool] | None = None) -> bool:
        """Sleep until the next tick, never past the deadline.

        With ``probe``, ask it at most once per :data:`PROBE_EVERY` seconds meanwhile; when it
        says a change is likely, stop sleeping and return True (the tick is now).
        """
        self.ticks_left -= 1
        self.start_ticks -= 1
        now = self.clock()
        fast, slow = self.cadence.fast, self.cadence.slow
        self.step = fast if now < self.hot_until else min(slow, self.step * 2)
        self.next = max(self.next + self.step, now)
        end = min(self.next, self.deadline)
        if probe is None:
            self.sleep(max(0.0, end - now))
            return False
        for _ in range(int((end - now) / PROBE_EVERY) + 3):  # bounded even if the clock stalls
            now = self.clock()
            if now >= end:
                break
            if now - self.probed_at >= PROBE_EVERY:
                self.probed_at = now
                if probe():
                    self.next = now
                    return True
            self.sleep(min(end - now, self.probed_at + PROBE_EVERY - now))
        return False
