"""HTTP seam: one requests Session with auth, headers, timeouts and GET/DELETE retries.

Every ``requests`` exception and every status >= 400 is translated here, once, into the
``livy.errors`` tree.  Retries use urllib3's ``Retry`` mounted on the session: only GET,
HEAD and DELETE are retried after the request was sent; POST is retried by urllib3 only
when the connection could not even be opened (nothing was sent).  Deciding what to do when
a POST's outcome is unknown is the client's job, because only it knows the batch name.

Each call also has an overall deadline (``deadline`` seconds, 120 by default), because a
read timeout bounds each read, not the answer: a body trickling in one byte every few
seconds would otherwise hold a call, and whatever waits on it, for good.  The body is read
in pieces against the deadline, each read allowed only the time left, and no retry starts
or sleeps past it.  What it cannot cut short is a header line trickling in byte by byte;
each of those reads is still bounded by the read timeout.
"""

from __future__ import annotations

import contextvars
import html
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from livy.errors import LivyHTTPError, LivyProtocolError, LivyTransportError

__all__ = ["BearerAuth", "RetryPolicy", "Transport", "Timeout"]

Timeout = tuple[float, float]
#: Seconds one call may take in all, retries and reading the body included.
DEFAULT_DEADLINE = 120.0
RETRYABLE_STATUSES = (429, 502, 503, 504)
_HINTS = {
    401: "check the user name and password (HDInsight: the cluster login)",
    403: "this user may not see or change that batch",
    502: "a gateway could not reach Livy; it may be restarting",
    503: "Livy or its gateway is unavailable; try again later",
    504: "a gateway timed out waiting for Livy",
}


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>``, e.g. for an AAD-fronted Livy."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls are retried: jittered exponential backoff, bounded.

    ``attempts`` counts the first try.  Tests pass ``backoff=0`` to stay instant.
    """

    attempts: int = 4
    backoff: float = 0.5
    backoff_max: float = 10.0
    jitter: float = 0.5
    statuses: tuple[int, ...] = RETRYABLE_STATUSES

    def to_urllib3(self) -> Retry:
        again = max(0, self.attempts - 1)
        return _CappedRetry(
            total=again,
            connect=again,
            read=again,
            status=again,
            other=0,
            allowed_methods=frozenset({"GET", "HEAD", "DELETE"}),
            status_forcelist=self.statuses,
            backoff_factor=self.backoff,
            backoff_max=self.backoff_max,
            backoff_jitter=self.jitter,
            raise_on_status=False,
            raise_on_redirect=False,
        )


#: When the call in progress (in this thread) must end, on the ``time.monotonic`` clock.
_DUE: contextvars.ContextVar[float | None] = contextvars.ContextVar("livy_due", default=None)
_CHUNK = 64 * 1024


def _left() -> float:
    due = _DUE.get()
    return float("inf") if due is None else due - time.monotonic()


class _CappedRetry(Retry):
    """A Retry-After header cannot make a call sleep longer than ``backoff_max``, and no retry
    starts or sleeps past the call's deadline."""

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.backoff_max, max(0.0, _left()))

    def get_backoff_time(self) -> float:
        return min(super().get_backoff_time(), max(0.0, _left()))

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or _left() <= 0


class _Overdue(Exception):
    """The call's deadline passed while its answer was still arriving."""


def error_message(body: str, content_type: str = "") -> str:
    """The human part of an error body: JSON ``msg``, a bare JSON string, or HTML title."""
    text = body.strip()
    if not text:
        return "(empty body)"
    if "html" in content_type or text.lstrip().startswith("<"):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        found = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
        return _truncate(" ".join(html.unescape(found).split()))
    try:
        value = json.loads(text)
    except ValueError:
        return _truncate(" ".join(text.split()))
    if isinstance(value, dict) and isinstance(value.get("msg"), str):
        return _truncate(value["msg"])
    if isinstance(value, str):
        return _truncate(value)
    return _truncate(json.dumps(value))


def _truncate(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hint(status: int, message: str) -> str:
    if status == 400 and "CSRF" in message:
        return "the server wants an X-Requested-By header on POST and DELETE"
    if status == 404 and "not found." not in message:
        return "check the Livy URL and its base path, e.g. https://CLUSTER.azurehdinsight.net/livy"
    return _HINTS.get(status, "")


class Transport:
    """JSON over HTTP to one Livy base URL; returns parsed bodies, raises LivyError."""

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
    ) -> None:
        if not deadline > 0:
            raise ValueError("deadline must be a positive number of seconds")
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.session = session or requests.Session()
        self.session.auth = auth
        self.session.verify = verify
        # Also given with every request: requests lets REQUESTS_CA_BUNDLE (and CURL_CA_BUNDLE)
        # override a session's own verify, so a private CA bundle would be ignored.
        self.verify = verify
        self.session.headers.update({"Accept": "application/json"})
        adapter = HTTPAdapter(max_retries=(retry or RetryPolicy()).to_urllib3())
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._requested_by = requested_by

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """Send one call (urllib3 may retry it) and return the decoded JSON answer."""
        url = self.base_url + path
        headers = {} if method == "GET" else {"X-Requested-By": self._requested_by}
        connect, read = self.timeout
        token = _DUE.set(time.monotonic() + self.deadline)
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=body,
                headers=headers,
                timeout=(connect, min(read, self.deadline)),
                stream=True,
                verify=self.verify,
            )
            try:
                data = _read_body(response, read)
            finally:
                response.close()
        except requests.exceptions.SSLError as exc:
            raise LivyTransportError(
                f"TLS failed for {method} {url}: {exc}; pass verify='/path/to/ca-bundle.pem' "
                "if the server uses a private CA",
                method=method,
                url=url,
            ) from exc
        except (_Overdue, requests.exceptions.Timeout, urllib3.exceptions.TimeoutError) as exc:
            if isinstance(exc, _Overdue) or _left() <= 0:
                why = f"did not complete within its deadline of {self.deadline:g} s"
            else:
                why = f"timed out (connect, read = {connect:g}, {read:g} s)"
            raise LivyTransportError(f"{method} {url} {why}", method=method, url=url) from exc
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise LivyTransportError(
                f"{method} {url} failed: {type(exc).__name__}: {_truncate(str(exc), 200)}",
                method=method,
                url=url,
            ) from exc
        finally:
            _DUE.reset(token)
        text = data.decode(response.encoding or "utf-8", errors="replace")
        return self._decode(method, url, response, text)

    @staticmethod
    def _decode(method: str, url: str, response: requests.Response, text: str) -> Any:
        content_type = response.headers.get("Content-Type", "")
        if response.status_code >= 400:
            message = error_message(text, content_type)
            raise LivyHTTPError(
                response.status_code,
                message,
                text,
                method=method,
                url=url,
                hint=_hint(response.status_code, message),
            )
        try:
            return json.loads(text)
        except ValueError as exc:
            raise LivyProtocolError(
                f"{method} {url} answered {response.status_code} with a body that is not "
                f"JSON: {error_message(text, content_type)}"
            ) from exc


def _read_body(response: requests.Response, read_timeout: float) -> bytes:
    """The whole body, read in pieces as they arrive; _Overdue once the deadline passes.

    Each read may wait only for the time left (or the read timeout, if shorter), so a body
    that trickles in, or stops, ends the call at its deadline.
    """
    raw = response.raw
    chunks: list[bytes] = []
    while True:
        left = _left()
        if left <= 0:
            raise _Overdue()
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        if sock is not None:
            sock.settimeout(min(read_timeout, left))
        chunk = raw.read1(_CHUNK, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
