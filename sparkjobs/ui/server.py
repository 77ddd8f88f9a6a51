"""The local web server: routes, security headers, artifact streaming. GET and HEAD only.

The standard library's threading HTTP server is enough for one person's browser on 127.0.0.1,
and adds no dependency; Jinja2 (the ``[ui]`` extra) renders the pages, escaped by default.

Routes (each page has a JSON twin, as Datasette's do)::

    /                      the runs table           /runs.json
    /runs/ID               one run                  /runs/ID.json
    /runs/ID/log.txt       the whole driver log     /runs/ID/log.json?offset=N (what came after N)
    /runs/ID/files/PATH    an image, for display    /runs/ID/download/PATH (a folder/ as a zip)
    /compare?run=A&run=B   runs side by side        /compare.json?run=A&run=B
"""
from __future__ import annotations

import errno
import json
import re
import shutil
import sys
import tempfile
import traceback
import zipfile
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import PurePosixPath
from typing import Any, Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..errors import ConfigError, RunNotFound, SparkJobsError, UnsafePathError
from .pages import View, compare_view, error_view, run_view, runs_view
from .previews import IMAGE_TYPES
from .reads import Scope, artifact_file, describe, find_artifacts, get_record, log_text

__all__ = ["UiServer", "make_server", "serve"]

#: Pages: scripts and styles only from this server (no inline script), nothing framed, no forms elsewhere.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
#: Artifacts: a file opened on its own (an SVG with a script in it) is sandboxed and runs nothing.
FILE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
_STATIC = {"style.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
_LOCAL_NAMES = {"127.0.0.1", "localhost", "[::1]"}


def _templates() -> Any:
    try:
        import jinja2
    except ImportError:
        raise ConfigError("The web page needs Jinja2, which the 'ui' extra installs: pip install 'sparkjobs[ui]'.") from None
    from .pages import file_url, run_url

    env = jinja2.Environment(loader=jinja2.PackageLoader("sparkjobs.ui", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(run_url=run_url, file_url=file_url)
    return env


class UiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], scope: Scope) -> None:
        self.scope = scope
        self.env = _templates()
        self.env.globals["heading"] = describe(scope)
        super().__init__(address, _Handler)
        host = address[0]
        self.allowed_hosts = None if host in ("0.0.0.0", "::", "") else _LOCAL_NAMES | {host}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def make_server(scope: Scope, host: str = "127.0.0.1", port: int = 8765) -> UiServer:
    """Bind the server; a port in use (or not ours to use) is one sentence, not a traceback."""
    try:
        return UiServer((host, port), scope)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"Port {port} on {host} is already in use; choose another with --port N.") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"Port {port} on {host} may not be used by this user; choose one above 1023 with --port N.") from None
        raise ConfigError(f"Cannot serve on {host}:{port}: {exc.strerror or exc}.") from None


def _host_name(header: str) -> str:
    """The host of a Host header, without its port: ``127.0.0.1:8765`` → ``127.0.0.1``, ``[::1]:80`` → ``[::1]``."""
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.split(":", 1)[0]


class _Handler(BaseHTTPRequestHandler):
    server: UiServer
    server_version = "sparkjobs-ui"
    sys_version = ""

    ROUTES: list[tuple[re.Pattern[str], str]] = [
        (re.compile(r"/"), "runs_page"),
        (re.compile(r"/runs\.json"), "runs_json"),
        (re.compile(r"/compare"), "compare_page"),
        (re.compile(r"/compare\.json"), "compare_json"),
        (re.compile(r"/static/([a-z.]+)"), "static"),
        (re.compile(r"/favicon\.ico"), "favicon"),
        (re.compile(r"/runs/([^/]+)\.json"), "run_json"),
        (re.compile(r"/runs/([^/]+)"), "run_page"),
        (re.compile(r"/runs/([^/]+)/log\.txt"), "log_txt"),
        (re.compile(r"/runs/([^/]+)/log\.json"), "log_json"),
        (re.compile(r"/runs/([^/]+)/(files|download)/(.+)"), "artifact"),
    ]

    def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise here
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _refuse(self) -> None:  # the page changes nothing: every other method is refused
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"Only GET and HEAD are allowed.\n", "text/plain; charset=utf-8",
                   extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _dispatch(self) -> None:
        if self.server.allowed_hosts is not None and _host_name(self.headers.get("Host", "")) not in self.server.allowed_hosts:
            # A page on another site cannot reach this server through a name it controls (DNS rebinding).
            return self._send(HTTPStatus.BAD_REQUEST, b"Unknown host.\n", "text/plain; charset=utf-8")
        url = urlsplit(self.path)
        path, params = unquote(url.path), parse_qs(url.query, keep_blank_values=True)
        try:
            for pattern, name in self.ROUTES:
                match = pattern.fullmatch(path)
                if match:
                    return getattr(self, name)(params, *match.groups())
            raise RunNotFound(f"There is no page at {path}.")
        except (RunNotFound, UnsafePathError) as exc:
            self._page(error_view(HTTPStatus.NOT_FOUND, exc), HTTPStatus.NOT_FOUND, path.endswith(".json"))
        except SparkJobsError as exc:
            self._page(error_view(HTTPStatus.BAD_REQUEST, exc), HTTPStatus.BAD_REQUEST, path.endswith(".json"))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
        except Exception as exc:  # a defect of ours: the page says so, the terminal has the details
            traceback.print_exc(file=sys.stderr)
            self._page(error_view(HTTPStatus.INTERNAL_SERVER_ERROR, f"sparkjobs could not show this page: {exc}"),
                       HTTPStatus.INTERNAL_SERVER_ERROR, path.endswith(".json"))

    # ---- pages and their JSON twins --------------------------------------------------------
    def runs_page(self, params: dict) -> None:
        self._page(runs_view(self.server.scope, params))

    def runs_json(self, params: dict) -> None:
        self._page(runs_view(self.server.scope, params), as_json=True)

    def run_page(self, params: dict, run_id: str) -> None:
        self._page(run_view(self.server.scope, run_id))

    def run_json(self, params: dict, run_id: str) -> None:
        self._page(run_view(self.server.scope, run_id), as_json=True)

    def compare_page(self, params: dict) -> None:
        self._page(compare_view(self.server.scope, params))

    def compare_json(self, params: dict) -> None:
        self._page(compare_view(self.server.scope, params), as_json=True)

    def log_txt(self, params: dict, run_id: str) -> None:
        text = log_text(self.server.scope, get_record(self.server.scope, run_id))
        self._send(HTTPStatus.OK, text.encode("utf-8"), "text/plain; charset=utf-8")

    def log_json(self, params: dict, run_id: str) -> None:
        """What the log gained after ``offset`` characters, for the live tail of a running run."""
        record = get_record(self.server.scope, run_id)
        text = log_text(self.server.scope, record)
        offset = (params.get("offset") or ["0"])[-1]
        start = int(offset) if offset.isdigit() and int(offset) <= len(text) else 0
        body = {"text": text[start:], "offset": len(text), "status": record.status.value,
                "running": not record.status.is_terminal, "restart": start == 0 and offset != "0"}
        self._send(HTTPStatus.OK, json.dumps(body).encode(), "application/json")

    def favicon(self, params: dict) -> None:
        self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")

    def static(self, params: dict, name: str) -> None:
        if name not in _STATIC:
            raise RunNotFound(f"There is no file {name}.")
        data = (resources.files("sparkjobs.ui") / "static" / name).read_bytes()
        self._send(HTTPStatus.OK, data, _STATIC[name], extra={"Cache-Control": "no-cache"})

    def artifact(self, params: dict, run_id: str, action: str, path: str) -> None:
        """An output file, or a folder of them as a zip. Only paths the run's record lists are
        served (a lookup, never a join), so '..' or another run's files answer 404."""
        scope = self.server.scope
        record = get_record(scope, run_id)
        matches = find_artifacts(record, path)
        if not matches:
            raise RunNotFound(f"Run {record.id} has no output file {path}.")
        name = PurePosixPath(path.rstrip("/")).name
        if path.endswith("/"):
            return self._zip(record, matches, name, path)
        suffix = PurePosixPath(name).suffix.lower()
        inline = action == "files" and suffix in IMAGE_TYPES
        kind = IMAGE_TYPES[suffix] if inline else "application/octet-stream"
        with artifact_file(scope, record, matches[0]) as local:
            with open(local, "rb") as handle:
                self._send_stream(handle, local.stat().st_size, kind, None if inline else name)

    def _zip(self, record: Any, matches: list, name: str, folder: str) -> None:
        with tempfile.TemporaryFile() as spool:
            with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
                for artifact in matches:
                    with artifact_file(self.server.scope, record, artifact) as local:
                        archive.write(local, f"{name}/{artifact.path[len(folder):]}")
            size = spool.tell()
            spool.seek(0)
            self._send_stream(spool, size, "application/zip", f"{name}.zip")

    # ---- sending ---------------------------------------------------------------------------
    def _page(self, view: View, status: int = HTTPStatus.OK, as_json: bool = False) -> None:
        if as_json:
            body = json.dumps(view.data, indent=2, default=str).encode()
            return self._send(status, body, "application/json")
        html = self.server.env.get_template(view.template).render(**view.context)
        self._send(status, html.encode("utf-8"), "text/html; charset=utf-8")

    def _headers(self, status: int, kind: str, length: int, policy: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {
            "Content-Type": kind, "Content-Length": str(length), "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin",
            "Cache-Control": "no-store", **(extra or {}),
        }.items():
            self.send_header(key, value)
        self.end_headers()

    def _send(self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
        self._headers(status, kind, len(body), PAGE_POLICY, extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_stream(self, handle: Any, length: int, kind: str, download_name: str | None) -> None:
        extra = {}
        if download_name is not None:
            # Only printable ASCII in the plain name: a newline in a file name must not end the header.
            ascii_name = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in download_name)
            extra["Content-Disposition"] = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(download_name)}"
        self._headers(HTTPStatus.OK, kind, length, FILE_POLICY, extra)
        if self.command != "HEAD":
            shutil.copyfileobj(handle, self.wfile, 1024 * 1024)


def serve(server: UiServer, on_ready: Callable[[str], None] = lambda url: None) -> None:
    """Serve until interrupted (Ctrl-C), then close the socket."""
    on_ready(server.url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
