"""A tiny supervisor between sparkjobs and a local job: ``python _supervisor.py EXIT_FILE -- ARGV...``.

It runs as the leader of the job's process group and exists for three guarantees that a plain
child process cannot give:

- the job never outlives sparkjobs unwatched: the kernel signals the supervisor when sparkjobs
  dies (``PR_SET_PDEATHSIG``, even after ``kill -9``), and it then ends the whole group;
- the run ends when the job's main process ends: children the job left behind (a stray
  ``sleep``) are ended too, so they cannot hold the output pipe and the run open;
- the job's end is written to EXIT_FILE (exit code, signal, time, reason), so a run whose
  sparkjobs died can still be settled truthfully by ``sparkjobs runs recover``.

Exit codes follow the shell: a job ended by signal N exits 128+N, however it was reported.
Run by path, with the standard library only, so it starts in milliseconds.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

GRACE_SECONDS = 10.0  # after SIGTERM, before SIGKILL
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> bool:
    """Ask the kernel for SIGTERM when the parent dies; False if it already has."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: sparkjobs' own kill paths still apply
        pass
    return os.getppid() == parent


def _group_members() -> list[int]:
    """Other live processes in our process group (Linux /proc; empty elsewhere)."""
    me, group = os.getpid(), os.getpgrp()
    members = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state, fields[2] the process group; zombies hold nothing open.
        if int(fields[2]) == group and fields[0] != b"Z":
            members.append(int(name))
    return members


def _end_group(grace: float) -> None:
    """SIGTERM what is left of the group, then SIGKILL whatever outlives the grace period."""
    if not _group_members():
        return
    _signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_members() and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_members():
        _signal_group(signal.SIGKILL)


def _signal_group(signum: int) -> None:
    for pid in _group_members():
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _write_exit(path: str, record: dict) -> None:
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w") as handle:
            json.dump(record, handle)
        os.replace(temporary, path)
    except OSError:
        pass  # a full disk must not keep the job's exit code from its parent


def main(argv: list[str]) -> int:
    exit_file, command = argv[1], argv[3:]
    parent = os.getppid()
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)  # the group we end must be the job's alone
    stop: dict[str, str] = {}

    def on_signal(signum: int, frame: object) -> None:
        if "reason" in stop:
            return
        parent_gone = os.getppid() != parent
        stop["reason"] = "sparkjobs stopped; the job was stopped with it." if parent_gone else "stopped"
        _signal_group(signal.SIGTERM)
        signal.setitimer(signal.ITIMER_REAL, GRACE_SECONDS)  # then SIGALRM: no more waiting

    signal.signal(signal.SIGALRM, lambda signum, frame: _signal_group(signal.SIGKILL))

    stops = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    for signum in stops:
        signal.signal(signum, on_signal)
    if not _die_with_parent(parent):
        return 1
    # A stop that arrives while the job starts is held until the job exists, then reaches it.
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    if "reason" in stop:
        return 128 + signal.SIGTERM
    try:
        child = subprocess.Popen(command, preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, stops))
    except OSError as exc:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        print(f"sparkjobs: could not start {command[0]}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        _write_exit(exit_file, {"exit_code": 127, "ended_at": _now(), "reason": "not started"})
        return 127
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    returncode = child.wait()
    signal.setitimer(signal.ITIMER_REAL, 0)
    code = _exit_code(returncode)
    # The main process is gone: whatever it left behind must not hold the run open.
    _end_group(grace=2.0)
    record = {"exit_code": code, "ended_at": _now()}
    if returncode < 0:
        record["signal"] = -returncode
    if "reason" in stop:
        record["reason"] = stop["reason"]
    _write_exit(exit_file, record)
    return code


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
