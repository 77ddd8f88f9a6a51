"""Looking for secrets where they must not be: texts, the processes of the machine, and the
application's environment page on Spark's own History Server.

The forms looked for are computed here, independently of ``sparkjobs.masking`` (which is what
is under test): the secret itself, URL-encoded (``quote``, ``quote_plus``, either case of hex
digits), with JSON's ``\\/``, and base64 (standard and URL-safe). Base64 encodes 3-byte groups,
so a secret inside longer encoded text (``admin:PASSWORD`` in an ``Authorization`` header)
comes out differently for each of the three offsets at which it can start; for each offset the
characters that encode the secret's bytes alone are looked for.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

from plugins.hdi_cluster import LIGHT_JVM, HdiCluster

__all__ = ["HistoryServer", "ProcessWatch", "find_secrets", "secret_forms"]


def secret_forms(secrets: Iterable[str], *, username: str | None = None) -> dict[str, str]:
    """Every form to look for, mapped to a label that does not show the secret."""
    forms: dict[str, str] = {}
    for number, secret in enumerate(secrets, 1):
        label = f"secret #{number}"
        plain = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), secret.replace("/", "\\/")}
        plain |= {form.lower() if "%" in form else form for form in plain}
        for form in plain:
            forms[form] = f"{label} ({'plain' if form == secret else 'URL-encoded'})"
        raw = secret.encode()
        for skip in range(3):
            piece = raw[skip:]
            encoded = base64.b64encode(piece[: len(piece) // 3 * 3]).decode()
            for form in (encoded, encoded.translate(str.maketrans("+/", "-_"))):
                if len(form) >= 8:
                    forms.setdefault(form, f"{label} (base64)")
        if username:  # what basic auth sends
            forms.setdefault(base64.b64encode(f"{username}:{secret}".encode()).decode(), f"{label} (basic auth)")
    return forms


def find_secrets(places: Mapping[str, str], forms: Mapping[str, str]) -> list[str]:
    """``place: label`` for each form found in each place (no secret in the result)."""
    return [f"{place}: {label}" for place, text in places.items() for form, label in forms.items() if form in text]


class ProcessWatch:
    """Reads the command line and environment of every process of this machine that this
    user may read, every half second while :meth:`running`; ``ignore`` pids are skipped."""

    def __init__(self, ignore: Iterable[int] = ()) -> None:
        self._ignore = set(ignore)
        self._seen: dict[tuple[int, bytes], tuple[bytes, bytes]] = {}  # (pid, start and command) -> (cmdline, environ)
        self._stop = threading.Event()

    @contextmanager
    def running(self) -> Iterator[ProcessWatch]:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=60)
            self._sample()  # once more, after the end

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def _sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in self._ignore or int(entry.name) == os.getpid():
                continue
            try:
                started = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[19]
                cmdline = (entry / "cmdline").read_bytes()
                key = (int(entry.name), started + b" " + cmdline)  # an exec keeps the pid, not the command
                if key in self._seen or not cmdline:
                    continue
                self._seen[key] = (cmdline, (entry / "environ").read_bytes())
            except (OSError, IndexError):
                continue  # gone, or not ours to read

    def kinds(self, markers: Mapping[str, str]) -> dict[str, int]:
        """How many processes were seen whose command line holds each marker."""
        lines = [cmdline.replace(b"\0", b" ").decode(errors="replace") for cmdline, _ in self._seen.values()]
        return {kind: sum(marker in line for line in lines) for kind, marker in markers.items()}

    def leaks(self, forms: Mapping[str, str]) -> list[str]:
        found = []
        for (pid, _), (cmdline, environ) in self._seen.items():
            shown = cmdline.replace(b"\0", b" ").decode(errors="replace")[:160]
            for what, data in (("command line", cmdline), ("environment", environ)):
                text = data.replace(b"\0", b"\n").decode(errors="replace")
                found += [f"pid {pid} ({shown}) {what}: {label}" for form, label in forms.items() if form in text]
        return found


@dataclass
class HistoryServer:
    """Spark's own History Server, from the cluster's Spark install, over its event log
    folder, on 127.0.0.1 and a free port; stopped by its pid."""

    process: subprocess.Popen
    url: str
    log: Path

    @classmethod
    @contextmanager
    def start(cls, cluster: HdiCluster, folder: Path) -> Iterator[HistoryServer]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        options = (f"-Dspark.history.fs.logDirectory={cluster.event_log_dir.as_uri()} -Dspark.history.ui.port={port} "
                   "-Dspark.history.fs.update.interval=1s")
        env = {**cluster.spark_env(), "SPARK_HISTORY_OPTS": options,
               "SPARK_DAEMON_MEMORY": "384m", "SPARK_DAEMON_JAVA_OPTS": " ".join(LIGHT_JVM),
               "SPARK_LOG_DIR": str(folder), "SPARK_LOCAL_IP": "127.0.0.1"}
        log = folder / "history-server.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([str(cluster.spark_home / "bin" / "spark-class"),
                                        "org.apache.spark.deploy.history.HistoryServer"],
                                       env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True, cwd=folder)
        server = cls(process, f"http://127.0.0.1:{port}", log)
        try:
            yield server
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                    process.wait(timeout=20)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue

    def get(self, path: str, timeout: float = 300.0) -> dict:
        """The JSON at ``path``, once the server has started and read the event log (bounded)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(self.url + path, timeout=10) as answer:
                    return json.loads(answer.read())
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(1.0)
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.is_file() else ""
        raise AssertionError(f"Spark's History Server gave no {path} ({last}; exit {self.process.poll()}):\n{tail}")
