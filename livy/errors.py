"""The one exception tree of the ``livy`` package.

::

    LivyError                      every failure this package raises on purpose
    ├── LivyTransportError         no usable HTTP answer: refused, reset, TLS, timeout
    ├── LivyHTTPError              an answer with status >= 400 (status, message, body)
    │   ├── BatchNotFound          404 for a batch this client never saw
    │   │   └── BatchForgotten     404 for a batch this client saw before: it finished and
    │   │                          outlived retention, or Livy restarted without recovery
    │   └── DuplicateBatchName     400: a retained batch already carries that name
    ├── LivyProtocolError          a 2xx answer that is not the JSON Livy promises
    ├── SubmissionUnknown          POST /batches had no clear outcome and the lookup by
    │                              name could not settle whether the batch exists
    ├── BatchMismatch              an id, or the answer to a submission, names another
    │                              batch (Livy restarted and reused ids, or a proxy mixed up answers)
    └── BatchTimeout               a wait() or tail() deadline passed
        └── BatchStartTimeout      the batch was still starting at its start deadline

Transport and status errors are separate branches, as in httpx: a caller that retries on
network trouble should not also retry a 400.  ``requests`` exceptions never leave the package;
they are translated in ``livy._transport`` with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "LivyError",
    "LivyTransportError",
    "LivyHTTPError",
    "BatchNotFound",
    "BatchForgotten",
    "DuplicateBatchName",
    "LivyProtocolError",
    "SubmissionUnknown",
    "BatchMismatch",
    "BatchTimeout",
    "BatchStartTimeout",
]


class LivyError(Exception):
    """Base of every error the livy package raises on purpose."""


class LivyTransportError(LivyError):
    """The request got no HTTP answer at all (after any retries the call allows)."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class LivyHTTPError(LivyError):
    """Livy (or a gateway in front of it) answered with status >= 400.

    ``message`` is the human part of the body: the ``msg`` of a JSON object, a bare JSON
    string as Jackson sends for unknown fields, or the title of an HTML page.
    """

    def __init__(
        self,
        status: int,
        message: str,
        body: str = "",
        *,
        method: str = "",
        url: str = "",
        hint: str = "",
    ) -> None:
        self.status = status
        self.message = message
        self.body = body
        self.method = method
        self.url = url
        self.hint = hint
        where = f" to {method} {url}" if method else ""
        text = f"Livy answered HTTP {status}{where}: {message}"
        super().__init__(f"{text} ({hint})" if hint else text)


class BatchNotFound(LivyHTTPError):
    """404 for a batch id or name this client has never seen."""


class BatchForgotten(BatchNotFound):
    """404 for a batch this client saw before.

    Livy forgets a finished batch after ``livy.server.session.state-retain.sec`` (600 s by
    default) and forgets every batch when it restarts without recovery.  The batch existed;
    its final state is no longer known to Livy.
    """


class DuplicateBatchName(LivyHTTPError):
    """400: Livy still retains a batch with this name; names must be unique."""


class LivyProtocolError(LivyError):
    """A successful answer whose body does not have the shape Livy documents."""


class SubmissionUnknown(LivyError):
    """The outcome of ``POST /batches`` is unknown and could not be settled.

    The request may or may not have started a job.  Look it up with
    ``LivyClient.get_batch_by_name(name)`` before submitting again.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class BatchMismatch(LivyError):
    """The id, or the answer to a submission, names a different batch than the one meant."""


class BatchTimeout(LivyError):
    """A wait or tail deadline passed while the batch was still not finished."""

    def __init__(self, message: str, *, batch_id: int, state: str) -> None:
        super().__init__(message)
        self.batch_id = batch_id
        self.state = state


class BatchStartTimeout(BatchTimeout):
    """The batch was still waiting to start (``not_started``, ``starting``) at its start
    deadline: YARN had no room for it, typically.  It keeps waiting until killed."""
