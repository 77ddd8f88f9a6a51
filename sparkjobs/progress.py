"""Progress for terminals (transfers, a first index build): a rich bar when stdout is a TTY, nothing otherwise."""
from __future__ import annotations

import sys
import threading
from typing import Callable

__all__ = ["terminal_progress"]


def terminal_progress(label: str, total: int, *, unit: str = "bytes") -> Callable[[int], None] | None:
    """Return a thread-safe callback drawing a bar, or None when not on a TTY. It is given byte
    counts, or with ``unit`` another name, counts of those (shown as done/total)."""
    if not sys.stdout.isatty() or total <= 0:
        return None
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TransferSpeedColumn

    columns = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(),)
    progress = Progress("[progress.description]{task.description}", BarColumn(), *columns, transient=True)
    task = progress.add_task(label, total=total)
    lock = threading.Lock()
    state = {"done": 0, "started": False}

    def advance(count: int) -> None:
        with lock:
            if not state["started"]:
                progress.start()
                state["started"] = True
            state["done"] += count
            progress.update(task, completed=min(state["done"], total))
            if state["done"] >= total:
                progress.stop()

    return advance
