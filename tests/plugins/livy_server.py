"""Fixtures for the Livy-protocol test server (tests/livy_server/).

``livy_server_factory(**options)`` starts a server with any ``LivyTestServer`` options
(``base_path``, ``auth``, ``csrf``, ``retention``, ``whitelist``, ``runner``, ``log_lines``);
the test's ``tmp_path`` is whitelisted unless ``whitelist`` is given.  Every server a test
started is stopped afterwards, which also kills the child processes it ran (by pid).
``livy_server`` is one default server: real spark-submit runner, CSRF on, no auth.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from livy_server import LivyTestServer

__all__ = ["livy_server_factory", "livy_server"]


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
