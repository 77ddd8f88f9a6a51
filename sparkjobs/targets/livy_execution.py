"""A Livy batch as an Execution, the run's files in cluster storage, and the one seam where
``livy`` errors become sparkjobs errors.

What a user sees while a batch runs: Livy's own log (on YARN, the spark-submit client's output;
Livy keeps only 200 lines per stream, which ``BatchHandle.tail`` handles) and each state
change, live; then, once the batch has ended, the driver's own output, which the bootstrap
wrote to ``runs/<id>/driver.log`` in storage, after a ``--- driver log ---`` header.

How a run ends is read from Livy (success, dead, killed) and, for the exit code, from the
``runs/<id>/exit.json`` the bootstrap writes last: Livy says only success or dead, and it
forgets a finished batch after its retention period (or all of them when it restarts), in
which case that file is the only word left on how the run ended. A batch Livy calls a
success without that file is a failure: the script's own end was never recorded. A batch
Livy loses while it still runs (another client's DELETE, or a restart, which stops every
batch unless recovery is on) and that left no such file is recorded ``killed``.

That file is also the first sign of the end: in yarn-cluster mode Livy's log shows nothing of
the driver, and Livy learns the end from YARN up to 5 s late (and YARN only once Spark has shut
down). So while the batch runs, storage (not Livy) is asked about once a second whether the
file exists; once it does, a batch on YARN is read from Livy once more and the run finishes
from the file (the record keeps the Livy state as read, often still ``running``); elsewhere
Livy is polled fast until the final state. A store that cannot answer only turns the hint off.

A batch that stays ``starting`` (YARN has no room for it) is reported every so often and
deleted at the compute's start deadline. Every line from Livy or storage passes through
``terminal_safe`` first: what a job prints must not drive the user's terminal.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from livy import (
    Batch,
    BatchHandle,
    BatchNotFound,
    BatchStartTimeout,
    BatchState,
    Cadence,
    LivyClient,
    LivyError,
    LogLine,
)

from ..errors import SparkJobsError, TargetError
from ..packages import PackageResolution
from ..runs import RunRepository, RunStatus
from ..storage.base import Store
from ..textsafe import terminal_safe
from .base import Execution, LineSink, Outcome
from .cluster_access import StorageAccess

__all__ = ["WATCH_DEADLINE_SECONDS", "LivyExecution", "RunFiles", "batch_details", "find_batch", "livy_errors"]

log = logging.getLogger(__name__)

#: How long one ``sparkjobs run`` watches a batch before it gives up watching (the batch runs on).
WATCH_DEADLINE_SECONDS = 7 * 24 * 3600.0
#: How often a batch still starting is reported, at most (more often for a short start deadline).
PROGRESS_SECONDS = 60.0
#: Livy's log lines kept to explain a batch that died early (Livy keeps 200 per stream).
KEPT_LINES = 600
DRIVER_LOG_HEADER = "--- driver log ---"
#: What the bootstrap says once the script has ended and its outputs are stored: the batch
#: is about to end. Livy's log shows it when the driver runs beside spark-submit (local or
#: client mode); in yarn-cluster mode spark-submit's own final report does the same.
BOOTSTRAP_FINISHING = r"^sparkjobs bootstrap: copied \d+ file\(s\) from \./outputs to "


@contextmanager
def livy_errors(action: str) -> Iterator[None]:
    """Turn any ``livy.LivyError`` into a TargetError (exit 2) that keeps Livy's message."""
    try:
        yield
    except LivyError as exc:
        raise TargetError(terminal_safe(f"Could not {action}: {str(exc).rstrip('.')}.")) from exc


def batch_details(livy_url: str, batch: Batch, name: str) -> dict[str, str]:
    """What a run record keeps about its batch; HDInsight links once the application is known."""
    details = {"livy_url": livy_url, "livy_batch_id": str(batch.id), "livy_batch_name": batch.name or name}
    if batch.app_id:
        details["app_id"] = terminal_safe(batch.app_id)
        host = urlsplit(livy_url).hostname or ""
        if host.endswith(".azurehdinsight.net"):
            details["yarn_ui"] = f"https://{host}/yarnui/hn/cluster/app/{batch.app_id}"
            details["spark_history"] = f"https://{host}/sparkhistory/history/{batch.app_id}/jobs"
    return details


@dataclass(frozen=True)
class RunFiles:
    """One run's files in the cluster's storage, next to its outputs (layout of ``runs.py``)."""

    store: Store
    run_id: str
    # The bootstrap writes its exit record once, whole, at the end: once read it is final, so the
    # finish (exit code, error, output digests) reads it from storage once, not once per question.
    _exit_read: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def prefix(self) -> str:
        return RunRepository.run_prefix(self.run_id)

    @property
    def launch_spec(self) -> str:
        return f"{self.prefix}/launch.json"

    @property
    def credentials(self) -> str:
        return f"{self.prefix}/_credentials.json"

    @property
    def exit(self) -> str:
        return f"{self.prefix}/exit.json"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}/metrics.jsonl"

    @property
    def params(self) -> str:
        return f"{self.prefix}/params.jsonl"

    @property
    def driver_log(self) -> str:
        return RunRepository(self.store).log_key(self.run_id)

    def shown(self, key: str) -> str:
        """Where a key is, for messages: the store's location and the key."""
        return f"{self.store.location.rstrip('/')}/{key}"

    def _exit_record(self) -> dict:
        if self._exit_read:
            return self._exit_read
        try:
            data = json.loads(self.store.get_bytes(self.exit))
        except (FileNotFoundError, ValueError):
            return {}
        # Only a whole record is kept: on a filesystem whose copy is not atomic (a local file,
        # Hadoop's copyFromLocalFile) it can be read half-written, and is read again later.
        if isinstance(data, dict) and "exit_code" in data:
            self._exit_read.update(data)
        return self._exit_read

    def exit_recorded(self) -> bool:
        """Whether the bootstrap's exit record is in storage, whole."""
        return bool(self._exit_record())

    def exit_code(self) -> int | None:
        """The script's exit code as the bootstrap recorded it, or None if it recorded none."""
        code = self._exit_record().get("exit_code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    def bootstrap_error(self) -> str | None:
        """Why the bootstrap stopped the run before the script ran (e.g. the wrong Python), if it did."""
        error = self._exit_record().get("error")
        return terminal_safe(error) if isinstance(error, str) and error else None

    def output_digests(self) -> dict[str, str]:
        """SHA-256 of each output the bootstrap copied, by path under outputs/."""
        digests = self._exit_record().get("outputs_sha256")
        if not isinstance(digests, dict):
            return {}
        return {k: v for k, v in digests.items() if isinstance(k, str) and isinstance(v, str)}

    def forget_credentials(self) -> str | None:
        """Delete the credentials file (the bootstrap normally has; this makes sure of it) and
        say why it could not, or None. It never raises: this is cleanup, and its failure must
        not hide the error or the outcome that came first (with a wrong key the delete is
        refused just as the upload was, for a file that was never written)."""
        try:
            self.store.delete(self.credentials)
        except (SparkJobsError, OSError) as exc:
            return f"Could not delete {self.shown(self.credentials)}, which holds a storage key: {str(exc).rstrip('.')}."
        return None


class _EndRecorded(Exception):
    """The run's exit record is in storage and the batch runs on YARN: stop watching Livy."""


class _ExitHint:
    """Whether the run's exit record is in storage yet: the batch is about to end. The answer
    comes from the store, never Livy; a store that fails once is not asked again (a store
    that hangs would delay every Livy poll), and that is said once, in the debug log only:
    the run itself is watched as before.

    Once the record is there and ``finish_now()`` says so, it raises :class:`_EndRecorded`
    instead of answering, which ends Livy's tail or wait (``livy`` lets a probe do that): on
    YARN, Livy learns the end up to 5 s after YARN, which learns it only once Spark has shut
    down, and the record already says all a run needs (it is written after the driver log and
    the outputs)."""

    def __init__(self, files: RunFiles, finish_now: Callable[[], bool] = lambda: False) -> None:
        self._files = files
        self._finish_now = finish_now
        self._broken = False

    def __call__(self) -> bool:
        if self._broken:
            return False
        try:
            found = self._files.exit_recorded()
        except Exception as exc:  # noqa: BLE001 - a hint must never fail the run
            self._broken = True
            log.info("sparkjobs: stopped looking for %s to see the end sooner: %s",
                     self._files.shown(self._files.exit), exc)
            return False
        if found and self._finish_now():
            raise _EndRecorded()
        return found


class _Replaced(Exception):
    """The batch id now names another batch: Livy restarted while the run was watched."""

    def __init__(self, other: str) -> None:
        super().__init__(other)
        self.other = other


class _Watched:
    """A LivyClient whose ``get_batch`` answers are also handed to ``on_batch``, so that state
    changes and the appId reach the user as soon as the handle's polling sees them."""

    def __init__(self, client: LivyClient, on_batch: Callable[[Batch], None]) -> None:
        self._client = client
        self._on_batch = on_batch

    def get_batch(self, key: int | str) -> Batch:
        batch = self._client.get_batch(key)
        self._on_batch(batch)
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class LivyExecution(Execution):
    """One Livy batch. ``forgotten`` starts it as a batch Livy no longer knows (reattach after
    retention): then only storage is read. ``start_timeout`` is how many seconds the batch may
    stay pending once watched; ``start_setting`` names where that limit is set, for messages.
    ``access`` and ``packages`` explain a batch that died before the bootstrap ran (the cluster
    could not read storage, or spark-submit could not resolve a package)."""

    detachable = True

    def __init__(
        self,
        client: LivyClient,
        batch: Batch,
        files: RunFiles,
        *,
        livy_url: str,
        name: str,
        cadence: Cadence,
        start_timeout: float = WATCH_DEADLINE_SECONDS,
        start_setting: str = "startTimeoutMinutes",
        forgotten: str | None = None,
        access: StorageAccess | None = None,
        packages: PackageResolution | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._files = files
        self._livy_url = livy_url
        self._name = name
        self._cadence = cadence
        self._start_timeout = start_timeout
        self._start_setting = start_setting
        self._forgotten = forgotten  # why Livy no longer answers for the batch
        self._vanished: str | None = None  # how Livy lost it before it ended: a DELETE, or a restart
        self._access = access
        self._packages = packages
        self._lines: deque[str] = deque(maxlen=KEPT_LINES)  # Livy's log as seen, to explain an early death
        self._never_started: str | None = None  # why sparkjobs deleted a batch stuck starting
        self._pending_state = ""  # the state it was stuck in
        self._killed = threading.Event()
        self._sink: LineSink | None = None
        self._last_state: BatchState | None = None
        self._clock = clock
        self._watched_since = clock()
        self._progress_every = min(PROGRESS_SECONDS, max(cadence.slow, start_timeout / 4))
        self._next_progress = self._progress_every
        self._handle = BatchHandle(_Watched(client, self._seen), batch, sleep=sleep, clock=clock)  # type: ignore[arg-type]
        self._ending = _ExitHint(files, self._on_yarn)
        self._end_recorded = False  # finished from the exit record, before Livy's final state
        self.details: Mapping[str, str] = batch_details(livy_url, batch, name)

    @property
    def batch(self) -> Batch:
        return self._handle.batch

    def _on_yarn(self) -> bool:
        """Whether Livy runs the batch on YARN (only there does its final state lag the end).
        A quiet wait reads only the state, and the id comes late: the batch is read once more."""
        if not (self._handle.batch.app_id or "").startswith("application_"):
            try:
                self._handle.refresh()
            except (LivyError, _Replaced):
                return False
        return (self._handle.batch.app_id or "").startswith("application_")

    def _read_once_more(self) -> None:
        """The exit record is in: read the batch once (its state as it is), not until it ends."""
        self._end_recorded = True
        try:
            self._handle.refresh()
        except (LivyError, _Replaced):
            pass  # the record says how the script ended; Livy's word would only add its state

    def _seen(self, batch: Batch) -> None:
        if batch.name is not None and batch.name != self._name:
            raise _Replaced(batch.name)
        self.details = batch_details(self._livy_url, batch, self._name)
        if self._sink is None:
            return
        if batch.state is not self._last_state:
            first, self._last_state = self._last_state is None, batch.state
            name = f" ({batch.name or self._name})" if first else ""
            app = f", application {batch.app_id}" if batch.app_id else ""
            self._sink(f"sparkjobs: Livy batch {batch.id}{name} is {batch.state_raw}{app}.")
        waited = self._clock() - self._watched_since
        if batch.state in BatchState.PENDING and waited >= self._next_progress:
            self._next_progress = (waited // self._progress_every + 1) * self._progress_every
            self._sink(
                f"sparkjobs: Livy batch {batch.id} still {batch.state_raw} after {_duration(waited)} "
                f"(sparkjobs deletes it after {_duration(self._start_timeout)}: {self._start_setting})."
            )

    # ---- Execution -------------------------------------------------------------------------
    def stream(self, sink: LineSink) -> None:
        safe: LineSink = lambda line: sink(terminal_safe(line))  # noqa: E731
        self._sink = safe
        try:
            if not self._forgotten and not self._killed.is_set():
                self._follow(safe)
        finally:
            self._sink = None
        if not self._never_started:  # a batch that never ran has no driver log to show
            self._emit_driver_log(safe)

    def _follow(self, sink: LineSink) -> None:
        batch_id = self._handle.id
        with livy_errors(f"watch Livy batch {batch_id}"):
            try:
                if self._last_state is None:
                    self._seen(self._handle.batch)
                tail = self._handle.tail(
                    WATCH_DEADLINE_SECONDS, interval=self._cadence, start_timeout=self._start_timeout,
                    finishing=(BOOTSTRAP_FINISHING,), ending=self._ending,
                )
                for line in tail:
                    self._lines.append(line.text)
                    sink(_shown(line))
            except _EndRecorded:
                self._read_once_more()
            except BatchStartTimeout as exc:
                self._give_up_starting(exc)
                sink(f"sparkjobs: {self._never_started}")
                return
            except BatchNotFound as exc:
                if self._killed.is_set():
                    return
                self._forgotten = self._lost(f"({exc.message})")
            except _Replaced as exc:
                self._forgotten = self._lost(f"(the id now names another batch, {exc.other})", restarted=True)
        if self._forgotten:
            sink(f"sparkjobs: {self._forgotten}; reading how it ended from storage.")

    def _give_up_starting(self, exc: BatchStartTimeout) -> None:
        """Delete a batch that never left the queue: nobody is watching it once sparkjobs is gone."""
        self._pending_state = terminal_safe(exc.state)
        self._never_started = (
            f"Livy batch {exc.batch_id} was still '{self._pending_state}' after {_duration(self._start_timeout)} "
            f"({self._start_setting}), so sparkjobs deleted it. The cluster probably had no room for it: "
            "check the YARN queue and the resources asked for, or allow more time."
        )
        with livy_errors(f"delete Livy batch {exc.batch_id}, which never started (it may still be queued)"):
            self._handle.kill()

    def _emit_driver_log(self, sink: LineSink) -> None:
        try:
            text = self._files.store.get_bytes(self._files.driver_log).decode("utf-8", errors="replace")
        except FileNotFoundError:
            sink(f"sparkjobs: no driver log at {self._files.shown(self._files.driver_log)} yet.")
            return
        sink(DRIVER_LOG_HEADER)
        # Lines end at newlines only: a bare carriage return must not start a line of its own.
        for line in text.removesuffix("\n").split("\n") if text else ():
            sink(line)

    def wait(self) -> Outcome:
        try:
            if not (self._forgotten or self._never_started or self._killed.is_set() or self._end_recorded
                    or self._handle.state.is_terminal):
                self._wait_quietly()
            return replace(self._outcome(), output_digests=self._files.output_digests())
        finally:
            problem = self._files.forget_credentials()
            if problem:
                log.warning("Warning: %s Delete it by hand.", problem)
            self._client.close()

    def _wait_quietly(self) -> None:
        with livy_errors(f"wait for Livy batch {self._handle.id}"):
            try:
                self._handle.wait(
                    WATCH_DEADLINE_SECONDS, interval=self._cadence, start_timeout=self._start_timeout, ending=self._ending,
                )
            except _EndRecorded:
                self._read_once_more()
            except BatchStartTimeout as exc:
                self._give_up_starting(exc)
            except BatchNotFound as exc:
                self._forgotten = self._lost(f"({exc.message})")
            except _Replaced as exc:
                self._forgotten = self._lost(f"(the id now names another batch, {exc.other})", restarted=True)

    def _lost(self, said: str, *, restarted: bool = False) -> str:
        """Why Livy no longer answers for the batch. One it last saw ending was forgotten after
        its retention period; one it last saw pending or running was taken away before it
        ended: real Livy forgets a batch at once when any client DELETEs it (which kills the
        job), and every batch when it restarts, stopping them as it shuts down unless recovery
        is on."""
        batch = self._handle.batch
        forgot = f"Livy forgot batch {batch.id} {said} before sparkjobs saw it end"
        if batch.state.is_terminal:
            return f"{forgot}: it keeps a finished batch only for livy.server.session.state-retain.sec"
        app = f" (application {batch.app_id})" if batch.app_id else ""
        how = ("Livy restarted, and without recovery it stops its batches as it shuts down" if restarted else
               "another client deleted it, which kills the job, or Livy restarted, which stops its batches as it "
               "shuts down unless recovery is on")
        self._vanished = f"It was {batch.state_raw}{app} when Livy lost it: {how}"
        return forgot

    def _outcome(self) -> Outcome:
        batch = self._handle.batch
        details = dict(self.details)
        store = self._files.store
        if self._killed.is_set():
            return Outcome(RunStatus.KILLED, None, f"Stopped by the user: Livy batch {batch.id} was deleted.", details=details, outputs_store=store)
        if self._never_started:
            details["livy_state"] = self._pending_state
            return Outcome(RunStatus.FAILED, None, self._never_started, details=details, outputs_store=store)
        code = self._files.exit_code()
        if self._forgotten:
            forgotten = terminal_safe(self._forgotten)
            if code is None and self._vanished:
                error = (f"{forgotten}. {terminal_safe(self._vanished)}. The job left no exit code at "
                         f"{self._files.shown(self._files.exit)}: it was stopped before it ended.")
                return Outcome(RunStatus.KILLED, None, error, details=details, outputs_store=store)
            if code is None:
                error = f"{forgotten}; the job left no exit code at {self._files.shown(self._files.exit)}, so how it ended is unknown."
                return Outcome(RunStatus.FAILED, None, error, details=details, outputs_store=store)
            status = RunStatus.COMPLETED if code == 0 else RunStatus.FAILED
            error = None if code == 0 else f"The job exited with code {code} (read from storage: {forgotten})."
            return Outcome(status, code, error, details=details, outputs_store=store)
        details["livy_state"] = terminal_safe(batch.state_raw)
        if self._end_recorded and not batch.state.is_terminal and code is not None:
            # Livy has not caught up with YARN yet; the exit record says how the script ended, and
            # the bootstrap's own sentence, if it stopped the run, says what to do.
            error = None if code == 0 else (self._files.bootstrap_error() or f"The job exited with code {code}.")
            return Outcome(RunStatus.COMPLETED if code == 0 else RunStatus.FAILED, code, error, details=details, outputs_store=store)
        if batch.state is BatchState.SUCCESS and code is None:
            error = (
                f"Livy reported success but the job never wrote its exit record at {self._files.shown(self._files.exit)}; "
                "the bootstrap may not have run, so how the script ended is unknown (see the Livy log above)."
            )
            return Outcome(RunStatus.FAILED, None, error, details=details, outputs_store=store)
        if batch.state is BatchState.SUCCESS:
            return Outcome(RunStatus.COMPLETED, code, None, details=details, outputs_store=store)
        diagnostics = _diagnostics(batch)
        if batch.state is BatchState.KILLED:
            return Outcome(RunStatus.KILLED, None, f"Livy batch {batch.id} was killed{diagnostics}.", details=details, outputs_store=store)
        ended = f"exited with code {code}" if code is not None else "failed before recording an exit code"
        error = f"The job {ended}; Livy batch {batch.id} ended '{terminal_safe(batch.state_raw)}'{diagnostics}."
        stopped = self._files.bootstrap_error() if code is not None else None
        if stopped:  # the bootstrap's one sentence says what to do; Livy's state adds nothing to act on
            return Outcome(RunStatus.FAILED, code, stopped, details=details, outputs_store=store)
        why = self._early_death() if code is None else None
        return Outcome(RunStatus.FAILED, code, f"{error} {why}" if why else error, details=details, outputs_store=store)

    def _early_death(self) -> str | None:
        """Why a batch died before the bootstrap recorded anything: a package spark-submit could
        not resolve, or (the likely cause otherwise) storage the cluster cannot read."""
        if self._access is None and self._packages is None:
            return None
        lines = [*self._lines, *self._handle.batch.log]
        if not self._lines:  # not followed (wait only): read Livy's log once
            try:
                lines[:0] = self._client.get_batch_log(self._handle.id, offset=0, size=-1).lines
            except LivyError:
                pass
        unresolved = self._packages.explain(lines) if self._packages is not None else None
        if unresolved is not None or self._access is None:
            return unresolved
        try:
            started = self._files.store.exists(self._files.driver_log)
        except Exception:  # noqa: BLE001 - a store that cannot say does not change the advice
            started = False
        return self._access.explain(lines, started, self._files.shown(self._files.driver_log))

    def kill(self) -> None:
        self._killed.set()
        with livy_errors(f"stop Livy batch {self._handle.id} (it may still be running)"):
            self._handle.kill()


def _shown(line: LogLine) -> str:
    return f"YARN: {line.text}" if line.stream == "yarn" and not line.gap else line.text


def _diagnostics(batch: Batch) -> str:
    """The first line of YARN's diagnostics in the batch's last log lines, if any."""
    if "\nYARN Diagnostics: " not in batch.log:
        return ""
    after = batch.log[batch.log.index("\nYARN Diagnostics: ") + 1 :]
    first = next((line.strip() for line in after if line.strip()), "")
    return f" (YARN: {terminal_safe(first)[:200]})" if first else ""


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def find_batch(client: LivyClient, batch_id: int, name: str, app_id: str | None) -> tuple[Batch | None, str]:
    """The batch by id if it still is ours, else by name; (None, why) when Livy has neither."""
    try:
        batch = client.get_batch(batch_id)
    except BatchNotFound:
        why = f"Livy has no batch {batch_id} and none named {name}"
    else:
        if _same_batch(batch, name, app_id):
            return batch, ""
        other = batch.name or batch.app_id or "unnamed"
        why = (
            f"batch id {batch_id} now belongs to another batch ({other}), so Livy restarted and reused the id, "
            f"and no batch is named {name}"
        )
    try:
        return client.get_batch_by_name(name), ""
    except BatchNotFound:
        return None, why


def _same_batch(batch: Batch, name: str, app_id: str | None) -> bool:
    """Whether the batch is the one meant; a Livy too old to keep names is judged by appId."""
    if batch.name is not None:
        return batch.name == name
    return app_id is None or batch.app_id in (None, app_id)
