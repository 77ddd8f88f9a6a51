"""An HDInsight-like gateway for tests: HTTPS, basic auth, Livy under ``/livy``.

On HDInsight every call goes to ``https://CLUSTER.azurehdinsight.net`` through an IIS/ARR
gateway that checks the cluster login (HTTP basic auth) and routes ``/livy/...`` to Livy and
``/api/v1/...`` to Ambari; its own errors (401, 502, 503, 504) are HTML pages. This gateway
does the same on 127.0.0.1:

- ``/livy/...`` is forwarded to any upstream Livy URL: the Livy-protocol test server, or a
  real Apache Livy. Nothing in here knows which.
- ``/api/v1/...`` is answered by ``ambari.AmbariSim``: simulated, there is no Ambari here.

Faults a test can inject, each one the gateway's own doing, never Livy's:
- ``fail_next``: a 502/503/504 storm, HTML pages, the request never reaches Livy;
- ``drop_after_next_post``: the POST reaches Livy, Livy creates the batch, and the gateway
  closes the connection without answering (the client cannot know whether it worked);
- ``delay_next``: the answer is held back for some seconds (a slow gateway or Livy);
- ``trickle_next``: headers at once, then the body one byte at a time (a stalled proxy).

Requests are served on threads; ``stop()`` shuts the server down and ends every held answer.
"""
from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from http_handler import DispatchingHandler
from livy_server import PAYLOADS

from .ambari import AmbariSim
from .tls import TlsFiles

__all__ = ["Gateway", "LIVY_PREFIX", "AMBARI_PREFIX"]

LIVY_PREFIX = "/livy"
AMBARI_PREFIX = "/api/v1"
GATEWAY_PAGES = {401: "gateway_401.html", 502: "gateway_502.html", 503: "gateway_503.html", 504: "gateway_504.html"}
# Not forwarded: hop-by-hop headers, and the login, which the gateway has checked and Livy
# on HDInsight never sees.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "authorization", "content-length",
}
UPSTREAM_TIMEOUT = 60.0


def gateway_page(status: int) -> str:
    return (PAYLOADS / GATEWAY_PAGES.get(status, "gateway_502.html")).read_text()


@dataclass
class _Fault:
    kind: str  # "status", "drop", "delay", "trickle"
    count: int
    methods: frozenset[str]
    prefix: str
    value: float = 0.0  # the status, or seconds

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and method in self.methods and path.startswith(self.prefix)


@dataclass(frozen=True)
class Seen:
    """One request as the gateway received it."""

    at: float  # time.monotonic()
    method: str
    path: str  # without the query
    status: int | None = None  # None: no answer was sent


@dataclass
class _Upstream:
    scheme: str
    host: str
    port: int
    base: str

    @classmethod
    def parse(cls, url: str) -> _Upstream:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http(s) URL, not {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    def connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=UPSTREAM_TIMEOUT)


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Gateway:
    """A running gateway. ``url`` is what a client is given (``https://127.0.0.1:PORT/livy``);
    ``origin`` is the cluster's address, where Ambari is (``https://127.0.0.1:PORT``).

    ``auth`` is the cluster login (user, password) or None for no check; ``tls`` the
    certificate files (``tls.make_tls``); ``ambari`` what ``/api/v1`` answers.
    """

    def __init__(
        self,
        upstream: str,
        *,
        tls: TlsFiles,
        auth: tuple[str, str] | None = ("admin", "gateway-Passw0rd!"),
        ambari: AmbariSim | None = None,
    ) -> None:
        self.upstream = _Upstream.parse(upstream)
        self.tls = tls
        self.auth = auth
        self.ambari = ambari or AmbariSim()
        self.seen: list[Seen] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _TLSServer(("127.0.0.1", 0), _Handler, tls)
        self._httpd.gateway = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="gateway"
        )
        self._thread.start()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.origin + LIVY_PREFIX

    def compute_keys(self) -> str:
        """The lines of a ``.compute`` file that reach Livy through this gateway (YAML)."""
        user = f"username: {self.auth[0]}\n" if self.auth else ""
        return f"livy: {self.url}\n{user}verify: {self.tls.ca}\n"

    # -- life --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving; held answers (delays, trickles) end at once. Bounded."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(
        self, count: int, status: int = 502, methods: Sequence[str] = ("GET",), prefix: str = LIVY_PREFIX
    ) -> None:
        """Answer the next ``count`` requests of ``methods`` under ``prefix`` with the gateway's
        HTML error page for ``status``; they never reach Livy (or Ambari)."""
        self._add(_Fault("status", count, _methods(methods), prefix, float(status)))

    def drop_after_next_post(self, prefix: str = LIVY_PREFIX) -> None:
        """Forward the next POST, let Livy answer it, then close the client's connection
        without a word: Livy has created the batch, the client does not know it."""
        self._add(_Fault("drop", 1, frozenset({"POST"}), prefix))

    def delay_next(
        self, count: int, seconds: float, methods: Sequence[str] = ("GET",), prefix: str = LIVY_PREFIX
    ) -> None:
        """Hold the answers of the next ``count`` requests back for ``seconds`` (after Livy
        answered them): a slow answer."""
        self._add(_Fault("delay", count, _methods(methods), prefix, seconds))

    def trickle_next(
        self, count: int = 1, every: float = 2.0, methods: Sequence[str] = ("GET",), prefix: str = LIVY_PREFIX
    ) -> None:
        """Send the next ``count`` answers' headers at once and their body one byte every
        ``every`` seconds (a proxy that has stalled)."""
        self._add(_Fault("trickle", count, _methods(methods), prefix, every))

    def faults_left(self) -> int:
        with self._lock:
            return sum(f.count for f in self._faults)

    # -- inspection --------------------------------------------------------------------------

    def count(self, method: str, suffix: str = "", prefix: str = LIVY_PREFIX) -> int:
        """Requests received with this method whose path is under ``prefix`` and ends with
        ``suffix``, whether or not they were answered."""
        with self._lock:
            return sum(
                1 for s in self.seen if s.method == method and s.path.startswith(prefix) and s.path.endswith(suffix)
            )

    def requests_between(self, start: float, end: float, prefix: str = LIVY_PREFIX) -> list[Seen]:
        """Requests under ``prefix`` received between two ``time.monotonic()`` readings."""
        with self._lock:
            return [s for s in self.seen if start <= s.at < end and s.path.startswith(prefix)]

    # -- used by the handler -----------------------------------------------------------------

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take(self, kinds: Sequence[str], method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.matches(method, path):
                    fault.count -= 1
                    return fault
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def _wait(self, seconds: float) -> bool:
        """Sleep, ending early if the gateway stops; True if it is still running."""
        return not self._stopping.wait(seconds)

    def _authorized(self, header: str | None) -> bool:
        if self.auth is None:
            return True
        expected = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return header == f"Basic {expected}"


def _methods(methods: Sequence[str]) -> frozenset[str]:
    return frozenset(m.upper() for m in methods)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], tls: TlsFiles) -> None:
        super().__init__(address, handler)
        # The handshake happens on the request's own thread (first read), so a client that
        # never finishes it cannot hold up the accept loop.
        self.socket = tls.server_context().wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (or refused our certificate): nothing to report


class _Handler(DispatchingHandler):
    server: _TLSServer

    # -- dispatch ----------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        gateway: Gateway = self.server.gateway  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path = parts.path
        at = time.monotonic()
        answer = self._answer(gateway, method, path, parts.query, raw)
        if answer is None:  # dropped: Livy answered, the client never hears it
            gateway._record(Seen(at, method, path))
            self.close_connection = True
            return
        gateway._record(Seen(at, method, path, answer.status))
        delay = gateway._take(("delay",), method, path)
        if delay is not None and not gateway._wait(delay.value):
            self.close_connection = True
            return
        trickle = gateway._take(("trickle",), method, path)
        self._send(gateway, answer, every=trickle.value if trickle else None)

    def _answer(self, gateway: Gateway, method: str, path: str, query: str, raw: bytes) -> _Answer | None:
        if not gateway._authorized(self.headers.get("Authorization")):
            return _html(401, {"WWW-Authenticate": 'Basic realm="Secure Area"'})
        fault = gateway._take(("status",), method, path)
        if fault is not None:
            return _html(int(fault.value))
        if path == LIVY_PREFIX or path.startswith(LIVY_PREFIX + "/"):
            answer = self._forward(gateway, method, path[len(LIVY_PREFIX):] or "/", query, raw)
            if method == "POST" and gateway._take(("drop",), method, path) is not None:
                return None
            return answer
        if path.startswith(AMBARI_PREFIX + "/"):
            values = {k: v[-1] for k, v in parse_qs(query).items()}
            got = gateway.ambari.answer(method, path[len(AMBARI_PREFIX):], values, gateway.origin)
            return _Answer(got.status, json.dumps(got.body, indent=2).encode(), {"Content-Type": "application/json"})
        return _html(404)

    def _forward(self, gateway: Gateway, method: str, rest: str, query: str, raw: bytes) -> _Answer:
        upstream = gateway.upstream
        target = upstream.base + rest + (f"?{query}" if query else "")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        connection = upstream.connect()
        try:
            connection.request(method, target, body=raw if raw or method in ("POST", "PUT") else None, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except TimeoutError:
            return _html(504)
        except (OSError, http.client.HTTPException):
            return _html(502)  # Livy is down or hung up: what ARR answers
        finally:
            connection.close()
        kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
        return _Answer(response.status, body, kept)

    # -- answers -----------------------------------------------------------------------------

    def _send(self, gateway: Gateway, answer: _Answer, every: float | None) -> None:
        self.send_response(answer.status)
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if every is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if every is None:
            self.wfile.write(answer.body)
            return
        self.wfile.flush()
        for index in range(len(answer.body)):  # bounded by the body; ends once the client left
            try:
                self.wfile.write(answer.body[index : index + 1])
                self.wfile.flush()
            except OSError:
                break
            if not gateway._wait(every):
                break
        self.close_connection = True


def _html(status: int, headers: dict[str, str] | None = None) -> _Answer:
    body = gateway_page(status).encode("iso-8859-1") if status in GATEWAY_PAGES else _not_found()
    return _Answer(status, body, {"Content-Type": "text/html", **(headers or {})})


def _not_found() -> bytes:
    return (PAYLOADS / "jetty_404.html").read_bytes()
