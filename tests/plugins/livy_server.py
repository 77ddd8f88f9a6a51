"""Fixtures for the Livy-protocol test server (tests/livy_server/).

``livy_server_factory(**options)`` starts a server with any ``LivyTestServer`` options
(``base_path``, ``csrf``, ``retention``, ``whitelist``, ``runner``, ``log_lines``,
``state_poll``); a gateway's faults and login are ``plugins/gateway.py``'s;
the test's ``tmp_path`` is whitelisted unless ``whitelist`` is given.  Every server a test
started is stopped afterwards, which also kills the child processes it ran (by pid).
``livy_server`` is one default server: real spark-submit runner, CSRF on, no auth.
``livy_client_factory(server, **options)`` makes a ``LivyClient`` for a server with
instant retries (backoff 0) and short timeouts, closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from livy_server import LivyTestServer

from livy import LivyClient, RetryPolicy

__all__ = ["livy_server_factory", "livy_server", "livy_client_factory"]


@pytest.fixture
def livy_server_factory(tmp_path: Path) -> Iterator[Callable[..., LivyTestServer]]:
    started: list[LivyTestServer] = []

    def start(**options: Any) -> LivyTestServer:
        options.setdefault("whitelist", [tmp_path])
        server = LivyTestServer(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def livy_server(livy_server_factory: Callable[..., LivyTestServer]) -> LivyTestServer:
    return livy_server_factory()


@pytest.fixture
def livy_client_factory() -> Iterator[Callable[..., LivyClient]]:
    clients: list[LivyClient] = []

    def make(server: LivyTestServer, **options: Any) -> LivyClient:
        options.setdefault("retry", RetryPolicy(attempts=4, backoff=0))
        options.setdefault("timeout", (5.0, 20.0))
        client = LivyClient(options.pop("url", server.url), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
