"""BatchHandle: wait for, tail and kill one batch, with deadlines and bounded polling.

Polling follows one schedule, one request per tick: a fixed ``interval`` (Livy itself
refreshes state from YARN only every 5 s, hence the default), or a :class:`Cadence` that
polls fast right after the start, after a state change and after a log line saying the job
is finishing, and slowly otherwise (``_schedule.py``).  ``wait()`` polls the cheap
``/state``.  ``tail()`` needs the whole log as well, and no Livy call answers both, so
each tick sends one of them.  Mostly the batch: its state tells that the job ended, and its
last 10 log lines carry new output where they overlap what was seen.  The whole log when
those lines show output that could not be placed, at least every ``LOG_EVERY`` + 1 ticks
(output can change out of sight of the last 10 lines), and on every tick while the job
writes more than 10 lines per tick, with the batch at least every ``STATE_EVERY`` + 1
ticks.  While the job is finishing, every tick reads the batch.  Transient trouble (no
answer, 429/502/503/504 after the transport's retries) costs a tick, not the wait.  So does
a 404 that is not Livy's own "not found", for up to ``FOREIGN_404_GRACE`` seconds: Livy's web
server answers that while Livy starts again, before its API is mounted.

Where Livy's log cannot tell that the job is finishing (on YARN in cluster mode it holds
spark-submit's output only), the caller may know better from elsewhere: ``ending`` is a
probe asked about once a second while the batch runs, between Livy requests, which says
whether the end is likely (say, the job's exit record has appeared in storage).  Once it
says so, the batch is read on every tick, fast, as for a finishing line; it is not asked
again.  The probe must be cheap.  An exception it raises ends the wait or tail (the
caller's way to stop watching once it knows enough from elsewhere).  The whole log is read less often
while it brings nothing new, down to every ``LOG_EVERY_MAX`` + 1 ticks.

Besides the overall deadline, ``start_timeout`` bounds how long a batch may stay pending
(``not_started``, ``starting``): on a full cluster YARN keeps an application waiting for as
long as it takes, and a wait of days is no use to anyone watching.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from livy._logtail import LIVY_LOG_LINES, LogFollower, LogLine
from livy._schedule import Cadence, Ticker, finishing_patterns
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
LOG_EVERY = 3
LOG_EVERY_MAX = 8
TAIL_LINES = 10  # the log lines that come with every Batch
_T = TypeVar("_T")
FOREIGN_404_GRACE = 120.0


def _finishing(lines: Iterable[str], hints: tuple[re.Pattern[str], ...], kicked: set[str]) -> bool:
    """Whether a line not seen before says the job is finishing. The batch's last lines are
    looked at too, even where they cannot be placed in the log yet."""
    found = False
    for line in lines:
        if line not in kicked and any(hint.search(line) for hint in hints):
            kicked.add(line)
            found = True
    return found


class _Ending:
    """The caller's "end is likely" probe, asked while the batch runs, until it says yes."""

    def __init__(self, probe: Callable[[], bool] | None, handle: BatchHandle) -> None:
        self._probe, self._handle = probe, handle

    def probe(self) -> Callable[[], bool] | None:
        state = self._handle.batch.state
        if self._probe is None or state in BatchState.PENDING or state.is_terminal:
            return None
        return self._ask

    def _ask(self) -> bool:
        if self._probe is not None and self._probe():
            self._probe = None  # once is enough: what it found stays true
            return True
        return False


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
        self._foreign_404_since: float | None = None

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
        interval: float | Cadence = 5.0,
        on_log: Callable[[LogLine], None] | None = None,
        start_timeout: float | None = None,
        finishing: Iterable[str | re.Pattern[str]] = (),
        ending: Callable[[], bool] | None = None,
    ) -> Batch:
        """Poll until the batch is terminal and return it; :class:`BatchTimeout` at the deadline.

        ``interval`` is seconds between polls, or a :class:`Cadence` (fast after the start
        and each state change, slow otherwise).  With ``on_log`` every new log line is
        passed to it as it arrives (see :meth:`tail`, which also takes ``finishing``).
        With ``start_timeout``, :class:`BatchStartTimeout` when the batch is still pending
        that many seconds after the call; the batch is left as it is.  ``ending`` is the
        caller's "end is likely" probe (module docstring).
        """
        if on_log is not None:
            tail = self.tail(timeout, interval=interval, start_timeout=start_timeout, finishing=finishing, ending=ending)
            for line in tail:
                on_log(line)
            return self.batch
        ticker = Ticker(self._clock, self._sleep, Cadence.of(interval), timeout, start_timeout)
        probe = _Ending(ending, self)
        while not self._deleted:
            before = self.batch.state
            state = self._poll_state()
            if state is not None and state.is_terminal:
                return self._finish(state)
            if state is not None and state is not before:
                ticker.kick()
            self._check_started(ticker, fresh=state is not None)
            self._check_deadline(ticker)
            if ticker.pause(probe.probe()):
                ticker.kick()
        return self.batch

    def tail(
        self,
        timeout: float,
        *,
        interval: float | Cadence = 5.0,
        start_timeout: float | None = None,
        finishing: Iterable[str | re.Pattern[str]] = (),
        ending: Callable[[], bool] | None = None,
    ) -> Iterator[LogLine]:
        """Yield new log lines until the batch is terminal, then drain the log once more.

        Each line is yielded once; lines lost to Livy's 200-line buffer show as one
        ``gap`` marker line.  A line matching :data:`FINISHING` or ``finishing`` (regular
        expressions), the first time it shows, says the job is ending: the batch is then
        read on every tick, fast with a :class:`Cadence`.  Raises :class:`BatchTimeout` at
        the deadline, and :class:`BatchStartTimeout` as :meth:`wait` does.  ``ending`` is
        the caller's "end is likely" probe, which acts as a finishing line (module docstring).
        """
        ticker = Ticker(self._clock, self._sleep, Cadence.of(interval), timeout, start_timeout)
        hints = finishing_patterns(finishing)
        follower = LogFollower(self._buffer_lines)
        probe = _Ending(ending, self)
        want_log, since_state, since_log, log_every = True, 0, 0, LOG_EVERY
        finishing_until = -float("inf")
        kicked: set[str] = set()  # finishing lines already acted on: each counts once
        while not self._deleted:
            window: tuple[str, ...] = ()  # the batch's last lines, when this tick read the batch
            if want_log:
                lines = self._poll_log(follower) or []
                yield from lines
                since_state, since_log = since_state + 1, 0
                # Nothing new: the job is quiet, so the next whole log can wait longer.
                log_every = LOG_EVERY if lines else min(LOG_EVERY_MAX, log_every * 2)
                # More than the batch's last lines show: keep reading the whole log.
                want_log = len(lines) >= TAIL_LINES and since_state < STATE_EVERY
            else:
                before = self.batch.state
                batch = self._poll(lambda: self.client.get_batch(self.batch.id))
                since_state, since_log, lines = 0, since_log + 1, []
                if batch is not None:
                    self.batch, window = batch, batch.log
                    lines = follower.feed_tail(batch.log)
                    yield from lines
                    if batch.state.is_terminal:
                        yield from self._poll_log(follower) or ()
                        return
                    if batch.state is not before:
                        ticker.kick()
                want_log = since_log >= log_every or (batch is not None and not follower.covers(batch.log))
            if _finishing([*(line.text for line in lines), *window], hints, kicked):
                ticker.kick()
                finishing_until = ticker.hot_until
            if self._clock() < finishing_until:
                want_log = False  # the end is near: read the state on every tick
            self._check_started(ticker, fresh=False)
            self._check_deadline(ticker)
            if ticker.pause(probe.probe()):
                ticker.kick()
                finishing_until, want_log = ticker.hot_until, False

    # -- internals -----------------------------------------------------------------------

    def _poll(self, call: Callable[[], _T]) -> _T | None:
        """One polling call; None when it failed in a way the next tick may not."""
        try:
            answer = call()
        except LivyError as exc:
            if not (_transient(exc) or self._starting_again(exc)):
                raise
            log.warning("polling Livy batch %s: %s; will try again", self.batch.id, exc)
            return None
        self._foreign_404_since = None
        return answer

    def _starting_again(self, exc: LivyError) -> bool:
        """A 404 that is not Livy's own "not found" for a URL that answered before: Livy is
        starting again and its web server answers before its API is mounted.  Tolerated for
        ``FOREIGN_404_GRACE`` seconds in a row, after which the URL is taken to be wrong."""
        if not isinstance(exc, LivyHTTPError) or exc.status != 404 or isinstance(exc, BatchNotFound):
            return False
        now = self._clock()
        if self._foreign_404_since is None:
            self._foreign_404_since = now
        return now - self._foreign_404_since < FOREIGN_404_GRACE

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

    def _check_started(self, ticker: Ticker, *, fresh: bool) -> None:
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

    def _check_deadline(self, ticker: Ticker) -> None:
        if ticker.expired():
            raise BatchTimeout(
                f"Livy batch {self.batch.id} is still {self.batch.state_raw!r} after the "
                f"deadline; it keeps running: kill it or wait again",
                batch_id=self.batch.id,
                state=self.batch.state_raw,
            )
