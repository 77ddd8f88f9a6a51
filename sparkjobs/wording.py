"""How numbers and sentences read: "1 file", "2 files", "12.3 kB", one full stop at the end."""
from __future__ import annotations

from rich.filesize import decimal

__all__ = ["count", "size", "sentence"]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "file")`` is "1 file", ``count(2, "file")`` "2 files"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def size(n: int) -> str:
    """Bytes in SI units, as snapshot sizes are said: "1 byte", "999 bytes", "12.3 kB"."""
    return decimal(n)


def sentence(text: str) -> str:
    """``text`` ending in exactly one full stop, question or exclamation mark."""
    text = text.rstrip()
    return text if text.endswith((".", "?", "!")) else text + "."
