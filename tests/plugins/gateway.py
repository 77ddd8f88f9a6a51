"""Fixtures for the HTTPS gateway (tests/gateway/).

``gateway_tls`` is one certificate authority and gateway certificate for the whole session.
``gateway_factory(upstream_url, **options)`` starts a gateway in front of any Livy URL (the
Livy-protocol test server's ``url``, or a real Livy's) with any ``Gateway`` options (``auth``,
``ambari``); every gateway a test started is stopped afterwards.
``gateway_client_factory(gateway, **options)`` makes a ``LivyClient`` that reaches Livy through
it: HTTPS with the test CA trusted (verification on), the gateway's login, instant retries.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway import Gateway, TlsFiles, make_tls

from livy import LivyClient, RetryPolicy

__all__ = ["gateway_tls", "gateway_factory", "gateway_client_factory"]


@pytest.fixture(scope="session")
def gateway_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(Path(tmp_path_factory.mktemp("gateway-tls")))


@pytest.fixture
def gateway_factory(gateway_tls: TlsFiles) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(upstream: str, **options: Any) -> Gateway:
        gateway = Gateway(upstream, tls=gateway_tls, **options)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway_client_factory() -> Iterator[Callable[..., LivyClient]]:
    clients: list[LivyClient] = []

    def make(gateway: Gateway, **options: Any) -> LivyClient:
        options.setdefault("retry", RetryPolicy(attempts=4, backoff=0))
        options.setdefault("timeout", (5.0, 20.0))
        options.setdefault("auth", gateway.auth)
        options.setdefault("verify", str(gateway.tls.ca))
        client = LivyClient(options.pop("url", gateway.url), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
