"""The request handler both test servers build on (the Livy-protocol server and the gateway):
HTTP/1.1, quiet, an idle timeout, and every method sent to one ``_handle(method)``."""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any


class DispatchingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may sit idle or mid-handshake

    def log_message(self, format: str, *args: Any) -> None:  # quiet tests
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        raise NotImplementedError
