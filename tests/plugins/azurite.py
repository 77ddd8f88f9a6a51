"""Azurite, the Azure Blob emulator, as a real server for the storage tests and the benchmark.

``start_azurite()`` and ``stop_azurite()`` are plain functions (bench/upload.py uses them too);
the ``azurite`` fixture runs one server for the whole session and ``azurite_container`` gives
each test a fresh container name. ``own_azurite`` is a server for one test alone, which it may
freeze with ``frozen(server)`` (SIGSTOP by pid: the kernel still accepts connections, nothing
answers) or stop. Azurite is started with ``node`` directly, not ``npx``,
which would leave the server behind as an orphaned child when stopped.

Azurite 3.35 (the newest that runs on Node 20) speaks an older API version than the
current SDK, hence ``--skipApiVersionCheck``.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "Azurite",
    "AzuriteMissing",
    "DEV_ACCOUNT",
    "DEV_KEY",
    "azurite_main",
    "start_azurite",
    "stop_azurite",
    "azurite",
    "azurite_container",
    "frozen",
    "own_azurite",
]

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run 'bash tests/run' (or 'npm install --prefix tests') to install Azurite"

# Azurite's published development account and key (documented by Microsoft; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteMissing(RuntimeError):
    """Azurite or Node is not installed where the tests expect them."""


@dataclass(frozen=True)
class Azurite:
    port: int
    process: subprocess.Popen = field(repr=False, compare=False)
    workdir: Path = field(repr=False, compare=False)
    account: str = DEV_ACCOUNT
    key: str = field(default=DEV_KEY, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def container_client(self, name: str) -> Any:
        """A plain SDK client for checking what a store wrote. Its retries are short: the SDK's
        defaults take about 85 s to give up when the emulator is down."""
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string, retry_total=1, connection_timeout=5)
        return service.get_container_client(name)


def azurite_main(repo: Path = REPO) -> Path:
    main = repo / "tests" / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
    if not main.is_file():
        raise AzuriteMissing(f"Azurite is not installed at {main}: {INSTALL_HINT}.")
    return main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_azurite(
    *, timeout: float = 60.0, attempts: int = 3, port: int | None = None, keep_in: Path | None = None
) -> Azurite:
    """Start an Azurite blob service and wait until it answers: in memory on a free port, or,
    with ``keep_in``, keeping its blobs in that folder so that it can be stopped and started
    again on the same ``port`` with its data."""
    main = azurite_main()
    node = shutil.which("node")
    if node is None:
        raise AzuriteMissing(f"Node.js is not on PATH; Azurite needs it ({INSTALL_HINT}).")
    last_log = ""
    for _ in range(attempts if port is None else 1):  # a free port may be taken before it is bound
        chosen = port or free_port()
        workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
        storage = ["--location", str(keep_in)] if keep_in else ["--inMemoryPersistence"]
        argv = [node, str(main), "--blobHost", "127.0.0.1", "--blobPort", str(chosen), *storage,
                "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
        with open(workdir / "azurite.log", "wb") as log:  # the child keeps its own handle
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        server = Azurite(chosen, process, workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(chosen):
                return server
            time.sleep(0.1)
        last_log = (workdir / "azurite.log").read_text(errors="replace")[-2000:] + _process_state(process)
        stop_azurite(server)
    raise RuntimeError(f"Azurite did not start in {attempts} attempts of {timeout:.0f} s. Its output:\n{last_log}")


def _process_state(process: subprocess.Popen) -> str:
    """How the node process stood when it gave up: its exit code, or its state and what it waits on."""
    code = process.poll()
    if code is not None:
        return f"\n(node exited with code {code})"
    try:
        stat = Path(f"/proc/{process.pid}/stat").read_text().split()
        wchan = Path(f"/proc/{process.pid}/wchan").read_text()
        return f"\n(node pid {process.pid} still running: state {stat[2]}, waiting in {wchan!r})"
    except OSError as exc:
        return f"\n(node pid {process.pid}: {exc})"


def stop_azurite(server: Azurite, timeout: float = 3.0) -> None:
    """Stop the server by its pid and remove its folder.

    Azurite says "successfully closed" on SIGTERM but its process may linger once clients
    have connected; it keeps nothing on disk, so it is killed after a short grace period.
    """
    process = server.process
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)  # a frozen server would not act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    shutil.rmtree(server.workdir, ignore_errors=True)


def _served() -> Iterator[Azurite]:
    """Fails (never skips) when Azurite is not installed."""
    try:
        server = start_azurite()
    except AzuriteMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        stop_azurite(server)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A running Azurite for the session."""
    yield from _served()


@pytest.fixture
def azurite_container() -> str:
    """A container name no other test uses (valid: lowercase letters, digits, hyphens)."""
    return f"test-{uuid.uuid4().hex[:16]}"


@contextmanager
def frozen(server: Azurite) -> Iterator[Azurite]:
    """The server frozen by SIGSTOP for the block, then continued whatever happened."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield server
    finally:
        os.kill(server.pid, signal.SIGCONT)


@pytest.fixture
def own_azurite() -> Iterator[Azurite]:
    """An Azurite for this test alone, so that freezing or stopping it disturbs no other test."""
    yield from _served()
