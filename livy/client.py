"""LivyClient: one method per Livy batch endpoint, each returning a typed model.

The client remembers which batch ids and names it has seen, so that a 404 can say whether
a batch never existed (:class:`BatchNotFound`) or existed and was forgotten
(:class:`BatchForgotten`).  ``POST /batches`` is never retried blindly; see
:meth:`LivyClient.create_batch`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests
from requests.auth import AuthBase

from livy._transport import DEFAULT_DEADLINE, RetryPolicy, Timeout, Transport
from livy.batch import BatchHandle
from livy.errors import (
    BatchForgotten,
    BatchMismatch,
    BatchNotFound,
    DuplicateBatchName,
    LivyError,
    LivyHTTPError,
    LivyTransportError,
    SubmissionUnknown,
)
from livy.models import Batch, BatchList, BatchRequest, BatchStatus, LogPage, Version

__all__ = ["LivyClient"]

log = logging.getLogger("livy")
_UNKNOWN_OUTCOME = (502, 503, 504)
BatchKey = int | str


class LivyClient:
    """A client for one Livy server, e.g. ``https://CLUSTER.azurehdinsight.net/livy``.

    ``auth`` is a ``(user, password)`` pair for HTTP basic auth, a :class:`BearerAuth`, or
    any ``requests`` auth object.  ``verify`` is True, False or a CA bundle path.
    ``timeout`` is ``(connect, read)`` seconds for each read, and ``deadline`` the seconds one
    call may take in all (retries and a slowly arriving answer included); no call waits forever.
    ``transport`` replaces the HTTP layer entirely (a test seam); the other options then
    do not apply.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: AuthBase | tuple[str, str] | None = None,
        verify: bool | str = True,
        timeout: Timeout = (10.0, 60.0),
        deadline: float = DEFAULT_DEADLINE,
        retry: RetryPolicy | None = None,
        requested_by: str = "livy-python-client",
        session: requests.Session | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.transport = transport or Transport(
            url,
            auth=auth,
            verify=verify,
            timeout=timeout,
            deadline=deadline,
            retry=retry,
            requested_by=requested_by,
            session=session,
        )
        self._seen: set[str] = set()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> LivyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- endpoints -----------------------------------------------------------------------

    def create_batch(self, request: BatchRequest) -> Batch:
        """``POST /batches``; the request must carry a unique ``name``.

        When the outcome is unknown (connection dropped or timed out after sending, a
        gateway 502/503/504, or a 201 naming another batch than the one sent), the batch is
        looked up by name: if it exists it is returned; if Livy says it does not, the
        request is sent once more.  Livy's duplicate-name check is the last guard: the job
        is never started twice, and another batch is never taken for this one.  Lookup by
        name needs Livy 0.6 or later; a request without a name is refused with ValueError.
        """
        if not request.name:
            raise ValueError(
                "BatchRequest.name is required so that a lost answer can be settled by a "
                "lookup; use livy.unique_name('prefix') for a fresh one"
            )
        name = request.name
        log.info("submitting Livy batch %r (file %s)", name, request.file)
        log.debug("batch request %r", request.redacted())
        outcome = self._post_once(request, first=True)
        if isinstance(outcome, LivyError):  # unknown: exists? if Livy says no, send once more
            outcome = self._settle(name, outcome) or self._post_once(request, first=False)
        if isinstance(outcome, LivyError):  # unknown again: exists? if not, give up
            outcome = self._settle(name, outcome) or outcome
        if isinstance(outcome, BatchMismatch):
            raise BatchMismatch(
                f"{outcome}; Livy has no batch named {name!r}, so nothing was started under "
                f"that name (a proxy in front of Livy may be mixing up answers)"
            ) from outcome
        if isinstance(outcome, LivyError):
            raise outcome
        return outcome

    def get_batch(self, batch: BatchKey) -> Batch:
        """``GET /batches/{id}``; a non-numeric key is looked up as a name (Livy >= 0.6)."""
        return self._remember(Batch.from_json(self._call("GET", self._path(batch), batch)))

    def get_batch_by_name(self, name: str) -> Batch:
        if not name or name.isdigit():
            raise ValueError(f"{name!r} cannot be looked up as a name: Livy reads digits as an id")
        return self.get_batch(name)

    def get_batch_checked(
        self, batch_id: int, expected_name: str | None = None, expected_app_id: str | None = None
    ) -> Batch:
        """Get a batch by id and check it is still the one meant.

        Livy restarted without recovery reuses ids from 0, so an old id can name a new batch.
        Raises :class:`BatchMismatch` when the name or appId the server reports differs.
        """
        batch = self.get_batch(batch_id)
        for what, expected, actual in (
            ("name", expected_name, batch.name),
            ("appId", expected_app_id, batch.app_id),
        ):
            if expected is not None and actual is not None and actual != expected:
                raise BatchMismatch(
                    f"Livy batch {batch_id} now has {what} {actual!r}, not {expected!r}: Livy "
                    f"probably restarted and reused the id; look the batch up by name instead"
                )
        return batch

    def get_batch_state(self, batch: BatchKey) -> BatchStatus:
        """``GET /batches/{id}/state``: the cheap call to poll."""
        return BatchStatus.from_json(self._call("GET", self._path(batch) + "/state", batch))

    def get_batch_log(
        self, batch: BatchKey, *, offset: int | None = None, size: int | None = 100
    ) -> LogPage:
        """``GET /batches/{id}/log?from=&size=``; ``size=-1`` returns the whole log view."""
        params = {k: v for k, v in (("from", offset), ("size", size)) if v is not None}
        return LogPage.from_json(
            self._call("GET", self._path(batch) + "/log", batch, params=params)
        )

    def list_batches(self, *, offset: int = 0, size: int = 100) -> BatchList:
        body = self._call("GET", "/batches", None, params={"from": offset, "size": size})
        page = BatchList.from_json(body)
        for batch in page.batches:
            self._remember(batch)
        return page

    def delete_batch(self, batch: BatchKey) -> None:
        """``DELETE /batches/{id}``: kills the job and makes Livy forget the batch."""
        self._call("DELETE", self._path(batch), batch)

    def get_version(self) -> Version:
        return Version.from_json(self._call("GET", "/version", None))

    # -- handles -------------------------------------------------------------------------

    def submit(
        self,
        request: BatchRequest,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> BatchHandle:
        """Create a batch and return a handle to wait on, tail or kill it."""
        return BatchHandle(self, self.create_batch(request), sleep=sleep, clock=clock)

    def attach(
        self,
        batch_id: int,
        expected_name: str | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> BatchHandle:
        """A handle on an existing batch, checked against the name it should have."""
        batch = self.get_batch_checked(batch_id, expected_name)
        return BatchHandle(self, batch, sleep=sleep, clock=clock)

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _path(batch: BatchKey) -> str:
        return "/batches/" + quote(str(batch), safe="")

    @staticmethod
    def _key(batch: BatchKey) -> str:
        text = str(batch)
        return f"id:{text}" if text.isdigit() else f"name:{text}"

    def _remember(self, batch: Batch) -> Batch:
        self._seen.add(self._key(batch.id))
        if batch.name:
            self._seen.add(self._key(batch.name))
        return batch

    def _post_once(self, request: BatchRequest, *, first: bool) -> Batch | LivyError:
        """The created batch, or the error that leaves the outcome unknown; raise the rest."""
        try:
            body = self._call("POST", "/batches", None, body=request.to_json())
        except DuplicateBatchName as exc:
            if first:
                raise
            return exc  # our earlier, lost POST did create it
        except LivyHTTPError as exc:
            if exc.status not in _UNKNOWN_OUTCOME:
                raise
            return exc
        except LivyTransportError as exc:
            return exc
        batch = Batch.from_json(body)
        if batch.name is not None and batch.name != request.name:
            return BatchMismatch(
                f"Livy answered the submission with batch {batch.id} named {batch.name!r}, "
                f"not {request.name!r}"
            )
        return self._remember(batch)

    def _settle(self, name: str, cause: LivyError) -> Batch | None:
        """After an unknown POST outcome: the batch if it exists, None if Livy says not."""
        log.warning("outcome of creating batch %r unknown (%s); looking it up", name, cause)
        try:
            return self.get_batch_by_name(name)
        except BatchNotFound:
            return None
        except LivyError as exc:
            raise SubmissionUnknown(
                f"cannot tell whether Livy created batch {name!r}: the submission failed "
                f"({cause}) and the lookup by name failed too ({exc}); look it up by name "
                f"before submitting again",
                name=name,
            ) from exc

    def _call(self, method: str, path: str, batch: BatchKey | None, **kwargs: Any) -> Any:
        try:
            return self.transport.request(method, path, **kwargs)
        except LivyHTTPError as exc:
            translated = self._translate(exc, batch)
            if translated is exc:
                raise
            raise translated from exc

    def _translate(self, exc: LivyHTTPError, batch: BatchKey | None) -> LivyHTTPError:
        cls: type[LivyHTTPError]
        if exc.status == 404 and batch is not None and "not found" in exc.message:
            if self._key(batch) in self._seen:
                cls, hint = (
                    BatchForgotten,
                    (
                        "this client saw it before: Livy forgets a finished batch after "
                        "livy.server.session.state-retain.sec, and every batch when it restarts"
                    ),
                )
            else:
                cls, hint = BatchNotFound, "no batch with that id or name"
        elif exc.status == 400 and "Duplicate session name" in exc.message:
            cls, hint = (
                DuplicateBatchName,
                ("batch names must be unique while Livy retains the earlier batch"),
            )
        else:
            return exc
        return cls(exc.status, exc.message, exc.body, method=exc.method, url=exc.url, hint=hint)
