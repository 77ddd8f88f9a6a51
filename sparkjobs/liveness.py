"""Which process owns a running run, and whether it is still alive.

A pid alone is not an identity: pids are reused. The owner is recorded as host, pid, the boot
the process belongs to and its start time in clock ticks, which together name one process for
the life of the machine. Only the machine that started a run can tell whether its owner is
gone; elsewhere (a team's shared Blob store) the answer is "unknown".
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ProcessIdentity"]

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            after_name = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(after_name[19])  # field 22 of proc(5): starttime, after "pid (comm)"


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    boot: str
    started: int | None

    @classmethod
    def current(cls) -> "ProcessIdentity":
        return cls(socket.gethostname(), os.getpid(), _boot_id(), _start_ticks(os.getpid()))

    def is_alive(self) -> bool | None:
        """True or False for a process of this machine's current boot; None when unknowable."""
        if self.host != socket.gethostname() or not self.boot or self.started is None:
            return None
        if self.boot != _boot_id():
            return False  # the machine restarted since
        return _start_ticks(self.pid) == self.started

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "boot": self.boot, "started": self.started}

    @classmethod
    def from_json(cls, data: Any) -> "ProcessIdentity | None":
        if not isinstance(data, dict):
            return None
        host, pid, boot, started = data.get("host"), data.get("pid"), data.get("boot"), data.get("started")
        if not (isinstance(host, str) and isinstance(pid, int) and isinstance(boot, str)):
            return None
        return cls(host, pid, boot, started if isinstance(started, int) else None)
