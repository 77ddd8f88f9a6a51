"""A TCP relay that counts the bytes a client sends through it: "bytes on the wire" to a server.

TLS passes through untouched (the client still verifies the server's certificate, whose
address is the same), so a test points a client at the relay's port and reads ``sent`` to
learn how much it uploaded. Binds the upstream's own address; ``stop()`` is bounded.
"""
from __future__ import annotations

import socket
import threading

__all__ = ["CountingProxy"]


class CountingProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server((upstream[0], 0))
        self._listener.settimeout(0.5)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sent = 0
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, name="counting-proxy", daemon=True)
        self._accepting.start()

    @property
    def sent(self) -> int:
        """Bytes clients have sent to the upstream through the relay, TLS records included."""
        with self._lock:
            return self._sent

    def reset(self) -> None:
        with self._lock:
            self._sent = 0

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            try:
                server = socket.create_connection(self._upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, dest: socket.socket, counted: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if counted:
                    with self._lock:
                        self._sent += len(chunk)
                dest.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, dest):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stopping.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
