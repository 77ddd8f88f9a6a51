"""A Livy-protocol HTTP server for tests, with fault injection.

Status codes, bodies, CSRF and base path follow shared/reference/livy-facts.md; the batch
side lives in ``batches.py``.  Bound to 127.0.0.1 on a free port.  What a gateway does
(HTTPS, basic auth, 502/503 storms, dropped and slow answers) is the HTTPS gateway's part
(tests/gateway/), in front of this server or of a real Livy.  Faults a test can inject
here are Livy's own: a batch killed server side, retention expired at once, a restart that
forgets every batch and counts ids from 0 again, a POST answered with another batch,
batches held in ``starting``, a batch that runs another command than its file, and
(``state_poll``) a final state set only at Livy's next poll of YARN.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from http_handler import DispatchingHandler

from .batches import BadBody, Record, Registry, Rejected

__all__ = ["LivyTestServer", "PAYLOADS"]

PAYLOADS = Path(__file__).parent / "payloads"
VERSION = json.loads((PAYLOADS / "version.json").read_text())
HTML_PAGES = {400: "csrf_400.html", 404: "jetty_404.html"}


def html_page(status: int) -> str:
    return (PAYLOADS / HTML_PAGES.get(status, "jetty_404.html")).read_text()


class LivyTestServer:
    """A running test server.  ``url`` includes the base path, as a client would be given.

    Options: ``base_path`` ("" or e.g. "/livy"), ``csrf`` (X-Requested-By required on POST/DELETE/PUT), ``retention`` (seconds a finished
    batch is kept), ``whitelist`` (folders local ``file:`` paths may come from, Livy's
    ``livy.file.local-dir-whitelist``), ``runner`` ("spark-submit" or "python"),
    ``log_lines`` (ring buffer size per stream), ``state_poll`` (seconds: as Livy on YARN,
    which reads an application's state from YARN every ``livy.server.yarn.poll-interval``,
    5 s, a batch's final state is set at the next such poll after its process ended; 0, the
    default, sets it at once, as Livy does for a local master).
    """

    def __init__(
        self,
        *,
        base_path: str = "",
        csrf: bool = True,
        retention: float = 600.0,
        whitelist: Sequence[Path] = (),
        runner: str = "spark-submit",
        log_lines: int = 200,
        workdir: Path | None = None,
        state_poll: float = 0.0,
    ) -> None:
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.csrf = csrf
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="livy-test-")
        self.registry = Registry(
            runner=runner,
            whitelist=whitelist,
            retention=retention,
            log_lines=log_lines,
            workdir=workdir or Path(self._tmp.name),
            state_poll=state_poll,
        )  # type: ignore[union-attr]
        self.requests: Counter[str] = Counter()
        self._post_answers: list[tuple[int, bool]] = []  # (batch id to answer with, create ours)
        self._lock = threading.Lock()
        self._stopped = False
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.livy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def stop(self) -> None:
        """Stop serving and kill every child process this server started (by pid)."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        self.registry.shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LivyTestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- fault injection ---------------------------------------------------------------------

    def answer_posts_with(self, batch_id: int, count: int = 1, *, create: bool = True) -> None:
        """Answer the next ``count`` POSTs with 201 and batch ``batch_id`` (another batch)
        instead of the batch they asked for, which is created only if ``create``."""
        with self._lock:
            self._post_answers.extend([(batch_id, create)] * count)

    def hold_in_starting(self, count: int = 1) -> None:
        """The next ``count`` batches stay ``starting`` and never run (the cluster has no
        room for them) until they are deleted."""
        self.registry.hold(count)

    def run_instead(self, argv: Sequence[str]) -> None:
        """The next batch runs ``argv`` instead of its file (e.g. a wrapper that skips it)."""
        self.registry.substitute(list(argv))

    def kill_batch(self, batch_id: int) -> None:
        """Kill a batch server side, as ``yarn application -kill`` would: state ``killed``."""
        record = self.registry.find(str(batch_id))
        if record is None:
            raise KeyError(batch_id)
        self.registry.kill(record)

    def expire_retention(self) -> None:
        """Forget every finished batch now, as if the retention period had passed."""
        self.registry.expire_all()

    def restart(self) -> None:
        """Forget every batch and restart ids at 0 (Livy restarted with recovery off)."""
        self.registry.restart()

    # -- inspection --------------------------------------------------------------------------

    def batch_count(self) -> int:
        return len(self.registry.all())

    def batch(self, batch_id: int) -> Record:
        record = self.registry.find(str(batch_id))
        if record is None:
            raise KeyError(batch_id)
        return record

    def faults_left(self) -> int:
        """Injected answers not yet served."""
        with self._lock:
            return len(self._post_answers)

    def count(self, method: str, suffix: str = "") -> int:
        """Requests received with this method whose path (after the base path) ends with suffix."""
        return sum(
            n
            for key, n in self.requests.items()
            if key.startswith(method + " ") and key.endswith(suffix)
        )

    # -- used by the handler -----------------------------------------------------------------

    def _take_post_answer(self) -> tuple[int, bool] | None:
        with self._lock:
            return self._post_answers.pop(0) if self._post_answers else None


class _Handler(DispatchingHandler):
    server: ThreadingHTTPServer

    # -- answers -----------------------------------------------------------------------------

    def _send(
        self, status: int, body: str, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, value: object, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value), "application/json;charset=utf-8", extra)

    def _html(self, status: int, extra: dict[str, str] | None = None) -> None:
        self._send(status, html_page(status), "text/html;charset=iso-8859-1", extra)

    def _not_found(self, key: str) -> None:
        self._json(404, {"msg": f"Session '{key}' not found."})

    # -- dispatch ----------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        livy: LivyTestServer = self.server.livy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        if not parts.path.startswith(livy.base_path + "/") and parts.path != livy.base_path:
            return self._html(404)
        path = parts.path[len(livy.base_path) :].rstrip("/") or "/"
        livy.requests[f"{method} {path}"] += 1
        if (
            livy.csrf
            and method in ("POST", "DELETE", "PUT")
            and not self.headers.get("X-Requested-By")
        ):
            return self._html(400)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            self._route(livy, method, path.split("/")[1:], query, raw)
        except ValueError as exc:  # a query parameter that is not a number
            self._json(400, {"msg": str(exc)})

    def _route(
        self, livy: LivyTestServer, method: str, parts: list[str], query: dict[str, str], raw: bytes
    ) -> None:
        if parts == ["version"] and method == "GET":
            return self._json(200, VERSION)
        if parts[:1] != ["batches"]:
            return self._html(404)
        if len(parts) == 1 and method == "GET":
            return self._list(livy, int(query.get("from", 0)), int(query.get("size", 100)))
        if len(parts) == 1 and method == "POST":
            return self._create(livy, raw)
        key = unquote(parts[1]) if len(parts) > 1 else ""
        record = livy.registry.find(key)
        if record is None:
            return self._not_found(key)
        tail = parts[2:]
        if not tail and method == "GET":
            return self._json(200, record.to_json())
        if not tail and method == "DELETE":
            livy.registry.delete(record)
            return self._json(200, {"msg": "deleted"})
        if tail == ["state"] and method == "GET":
            return self._json(200, {"id": record.id, "state": record.state})
        if tail == ["log"] and method == "GET":
            return self._log(record, query)
        return self._html(404)

    def _list(self, livy: LivyTestServer, start: int, size: int) -> None:
        records = livy.registry.all()
        with livy.registry.lock:
            sessions = [r.to_json() for r in records[start : start + size]]
        self._json(200, {"from": start, "total": len(records), "sessions": sessions})

    def _log(self, record: Record, query: dict[str, str]) -> None:
        """Livy's ``serializeLogs``: size<0 means all; no ``from`` means the last ``size``."""
        with self.server.livy.registry.lock:  # type: ignore[attr-defined]
            lines = record.view()
        size = int(query.get("size", 100))
        start = int(query.get("from", -1))
        if size < 0:
            start = 0
        elif start < 0:
            start = max(0, len(lines) - size)
        until = len(lines) if size < 0 else start + size
        self._json(
            200, {"id": record.id, "from": start, "total": len(lines), "log": lines[start:until]}
        )

    def _create(self, livy: LivyTestServer, raw: bytes) -> None:
        answer = livy._take_post_answer()
        if answer is not None:
            other = livy.registry.find(str(answer[0]))
            if other is None:
                raise KeyError(f"answer_posts_with: no batch {answer[0]}")
            if answer[1]:
                livy.registry.create(json.loads(raw or b"null"))
            with livy.registry.lock:
                view = other.to_json()
            return self._json(201, view, {"Location": f"/{other.id}"})
        try:
            body = json.loads(raw or b"null")
            record = livy.registry.create(body)
        except json.JSONDecodeError as exc:
            return self._json(
                400, f"Unexpected character: {exc.msg} at line {exc.lineno} column {exc.colno}"
            )
        except BadBody as exc:
            return self._json(400, str(exc))
        except Rejected as exc:
            return self._json(400, {"msg": f"Rejected, Reason: {exc}"})
        with livy.registry.lock:
            view = record.to_json()
        return self._json(201, view, {"Location": f"/{record.id}"})
