"""BatchHandle: wait for, tail and kill one batch, with deadlines and bounded polling.

Polling follows one schedule: at most one request per ``interval`` (Livy itself refreshes
state from YARN only every 5 s, hence the default).  ``wait()`` polls the cheap
``/state``.  ``tail()`` needs the whole log as well, and no Livy call answers both, so
each tick sends one of them: the whole log while it keeps changing, and the batch (state
plus the last 10 log lines, used where they overlap what was seen) on the tick after the
log was quiet (a job that stops writing is the one that may have ended) and at least every
``STATE_EVERY`` ticks.  Transient trouble (no answer, 429/502/503/504 after the
transport's retries) costs a tick, not the wait.

Besides the overall deadline, ``start_timeout`` bounds how long a batch may stay pending
(``not_started``, ``starting``): on a full cluster YARN keeps an application waiting for as
long as it takes, and a wait of days is no use to anyone watching.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from livy._logtail import LIVY_LOG_LINES, LogFollower, LogLine
from livy._transport import RETRYABLE_STATUSES
from livy.errors import (
    BatchNotFound,
    BatchStartTimeout,
    BatchTimeout,
    LivyError,
    LivyHTTPError,
    LivyTransportError,
)
from livy.models import Batch, BatchState

if TYPE_CHECKING:
    from livy.client import LivyClient

__all__ = ["BatchHandle", "LogLine"]

log = logging.getLogger("livy")
STATE_EVERY = 20
_T = TypeVar("_T")


class _Ticker:
    """A fixed schedule of ticks ending at a deadline; bounded even if the clock stalls."""

    def __init__(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        interval: float,
        timeout: float,
        start_timeout: float | None = None,
    ) -> None:
        if interval <= 0 or timeout < 0 or (start_timeout is not None and start_timeout < 0):
            raise ValueError("interval must be > 0 and timeouts >= 0 seconds")
        self.clock, self.sleep, self.interval = clock, sleep, interval
        self.next = clock()
        self.deadline = self.next + timeout
        self.ticks_left = int(timeout / interval) + 2 if math.isfinite(timeout) else -1
        self.start_timeout = math.inf if start_timeout is None else start_timeout
        self.start_deadline = self.next + self.start_timeout
        self.start_ticks = int(start_timeout / interval) + 2 if start_timeout is not None else -1

    def expired(self) -> bool:
        return self.clock() >= self.deadline or self.ticks_left == 0

    def start_expired(self) -> bool:
        return self.clock() >= self.start_deadline or self.start_ticks == 0

    def pause(self) -> None:
        """Sleep until the next tick, never past the deadline."""
        self.ticks_left -= 1
        self.start_ticks -= 1
        now = self.clock()
        self.next = max(self.next + self.interval, now)
        self.sleep(max(0.0, min(self.next, self.deadline) - now))


def _transient(exc: LivyError) -> bool:
    if isinstance(exc, LivyTransportError):
        return True
    return isinstance(exc, LivyHTTPError) and exc.status in RETRYABLE_STATUSES


class BatchHandle:
    """One batch on one Livy server.  Reading ``batch`` or ``state`` never calls Livy.

    ``sleep`` and ``clock`` are injectable so that tests of long waits run instantly.
    """

    def __init__(
        self,
        client: LivyClient,
        batch: Batch,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        log_buffer_lines: int = LIVY_LOG_LINES,
    ) -> None:
        self.client = client
        self.batch = batch
        self._sleep = sleep
        self._clock = clock
        self._buffer_lines = log_buffer_lines
        self._deleted = False

    @property
    def id(self) -> int:
        return self.batch.id

    @property
    def state(self) -> BatchState:
        """The last state seen; call :meth:`refresh` to ask Livy."""
        return self.batch.state

    def refresh(self) -> Batch:
        self.batch = self.client.get_batch(self.batch.id)
        return self.batch

    def kill(self) -> None:
        """Kill the job (``DELETE``); Livy then forgets the batch.  Safe to call twice."""
        if not self._deleted:
            try:
                self.client.delete_batch(self.batch.id)
            except BatchNotFound:
                log.info("batch %s was already gone when killed", self.batch.id)
        self._deleted = True
        self.batch = replace(self.batch, state=BatchState.KILLED, state_raw="killed")

    def wait(
        self,
        timeout: float,
        *,
        interval: float = 5.0,
        on_log: Callable[[LogLine], None] | None = None,
        start_timeout: float | None = None,
    ) -> Batch:
        """Poll until the batch is terminal and return it; :class:`BatchTimeout` at the deadline.

        With ``on_log`` every new log line is passed to it as it arrives (see :meth:`tail`).
        With ``start_timeout``, :class:`BatchStartTimeout` when the batch is still pending
        that many seconds after the call; the batch is left as it is.
        """
        if on_log is not None:
            for line in self.tail(timeout, interval=interval, start_timeout=start_timeout):
                on_log(line)
            return self.batch
        ticker = _Ticker(self._clock, self._sleep, interval, timeout, start_timeout)
        while not self._deleted:
            state = self._poll_state()
            if state is not None and state.is_terminal:
                return self._finish(state)
            self._check_started(ticker, fresh=state is not None)
            self._check_deadline(ticker)
            ticker.pause()
        return self.batch

    def tail(
        self, timeout: float, *, interval: float = 5.0, start_timeout: float | None = None
    ) -> Iterator[LogLine]:
        """Yield new log lines until the batch is terminal, then drain the log once more.

        Each line is yielded once; lines lost to Livy's 200-line buffer show as one
        ``gap`` marker line.  Raises :class:`BatchTimeout` at the deadline, and
        :class:`BatchStartTimeout` as :meth:`wait` does.
        """
        ticker = _Ticker(self._clock, self._sleep, interval, timeout, start_timeout)
        follower = LogFollower(self._buffer_lines)
        want_log, since_state = True, 0
        while not self._deleted:
            if want_log:
                lines = self._poll_log(follower)
                yield from lines or ()
                since_state += 1
                want_log = bool(lines) and since_state < STATE_EVERY
            else:
                batch = self._poll(lambda: self.client.get_batch(self.batch.id))
                since_state, want_log = 0, True
                if batch is not None:
                    self.batch = batch
                    yield from follower.feed_tail(batch.log)
                    if batch.state.is_terminal:
                        yield from self._poll_log(follower) or ()
                        return
            self._check_started(ticker, fresh=False)
            self._check_deadline(ticker)
            ticker.pause()

    # -- internals -----------------------------------------------------------------------

    def _poll(self, call: Callable[[], _T]) -> _T | None:
        """One polling call; None when it failed in a way the next tick may not."""
        try:
            return call()
        except LivyError as exc:
            if not _transient(exc):
                raise
            log.warning("polling Livy batch %s: %s; will try again", self.batch.id, exc)
            return None

    def _poll_state(self) -> BatchState | None:
        status = self._poll(lambda: self.client.get_batch_state(self.batch.id))
        if status is None:
            return None
        self.batch = replace(self.batch, state=status.state, state_raw=status.state_raw)
        return status.state

    def _poll_log(self, follower: LogFollower) -> list[LogLine] | None:
        page = self._poll(lambda: self.client.get_batch_log(self.batch.id, offset=0, size=-1))
        return None if page is None else follower.feed(page)

    def _finish(self, state: BatchState) -> Batch:
        """Fetch the full final batch (appId, links); keep the known state if that fails."""
        try:
            self.batch = self.client.get_batch(self.batch.id)
        except LivyError as exc:
            log.warning(
                "batch %s ended %s but could not be read again: %s", self.batch.id, state.value, exc
            )
        return self.batch

    def _check_started(self, ticker: _Ticker, *, fresh: bool) -> None:
        """BatchStartTimeout if the batch is still pending at the start deadline.

        A state not polled on this tick may be old (``tail`` reads the state only now and
        then), so it is read once more before the batch is given up on.
        """
        if self.batch.state not in BatchState.PENDING or not ticker.start_expired():
            return
        if not fresh:
            batch = self._poll(lambda: self.client.get_batch(self.batch.id))
            if batch is None:
                return  # no answer: the next tick decides
            self.batch = batch
            if batch.state not in BatchState.PENDING:
                return
        raise BatchStartTimeout(
            f"Livy batch {self.batch.id} is still {self.batch.state_raw!r} after "
            f"{ticker.start_timeout:g} s: the cluster may have no room for it (a full YARN "
            f"queue or too few resources); it keeps waiting: kill it or wait again",
            batch_id=self.batch.id,
            state=self.batch.state_raw,
        )

    def _check_deadline(self, ticker: _Ticker) -> None:
        if ticker.expired():
            raise BatchTimeout(
                f"Livy batch {self.batch.id} is still {self.batch.state_raw!r} after the "
                f"deadline; it keeps running: kill it or wait again",
                batch_id=self.batch.id,
                state=self.batch.state_raw,
            )
