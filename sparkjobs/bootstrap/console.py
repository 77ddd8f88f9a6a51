"""The bootstrap's own messages, and flushing the script's streams."""
from __future__ import annotations

import contextlib
import sys

__all__ = ["brief", "count", "flush_stdio", "say"]


def brief(exc: BaseException) -> str:
    """One line about an error; a Py4JJavaError's str() is a whole Java stack trace."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        return str(java.toString())
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def count(number: int, noun: str) -> str:
    """``1 file``, ``2 files``: nouns here take an s."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def say(message: str) -> None:
    print(f"sparkjobs bootstrap: {message}", file=sys.stderr, flush=True)


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(Exception):  # a script may leave closed or odd streams behind
                stream.flush()
