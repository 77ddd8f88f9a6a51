"""What a run's output files look like on its page: images inline, CSV as a table of its first
rows, JSON pretty-printed, text as it is; anything else only by name, size and Download.

Images are shown with ``<img>``, never inlined into the page: an SVG in an ``<img>`` runs no
script, and the file itself is served under a sandboxing policy (see server.py).
"""
from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = ["Kind", "Preview", "kind_of", "IMAGE_TYPES", "render", "MAX_PREVIEWS", "MAX_IMAGE_BYTES"]

MAX_PREVIEWS = 12
MAX_IMAGE_BYTES = 20 * 1024 * 1024
CSV_ROWS = 20
_TEXT_CHARS = 20_000


class Kind(str, enum.Enum):
    IMAGE = "image"
    CSV = "csv"
    JSON = "json"
    TEXT = "text"


#: The only types served for display in the page; every other file is served as a download.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".svg": "image/svg+xml"}
_KINDS = {".csv": Kind.CSV, ".tsv": Kind.CSV, ".json": Kind.JSON, ".txt": Kind.TEXT, ".log": Kind.TEXT,
          ".md": Kind.TEXT, ".yaml": Kind.TEXT, ".yml": Kind.TEXT, ".py": Kind.TEXT, ".out": Kind.TEXT,
          ".ini": Kind.TEXT, ".cfg": Kind.TEXT, ".toml": Kind.TEXT, ".xml": Kind.TEXT, ".html": Kind.TEXT}


@dataclass(frozen=True)
class Preview:
    path: str
    kind: Kind
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    text: str = ""
    cut: bool = False  # only the start of the file is shown


def kind_of(path: str) -> Kind | None:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in IMAGE_TYPES:
        return Kind.IMAGE
    return _KINDS.get(suffix)


def render(path: str, kind: Kind, head: bytes, size: int) -> Preview:
    """The preview of a file from its first bytes (``head``) and its full size."""
    cut = len(head) < size
    if kind is Kind.IMAGE:
        return Preview(path, kind)
    text = head.decode("utf-8", errors="replace")
    if kind is Kind.CSV:
        return _table(path, text, delimiter="\t" if path.lower().endswith(".tsv") else ",", cut=cut)
    if kind is Kind.JSON and not cut:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass  # shown as the text it is
    shown = text[:_TEXT_CHARS]
    return Preview(path, kind, text=shown, cut=cut or len(shown) < len(text))


def _table(path: str, text: str, *, delimiter: str, cut: bool) -> Preview:
    lines = text.splitlines()
    if cut and lines:
        lines = lines[:-1]  # the last line read may be half a row
    reader = csv.reader(io.StringIO("\n".join(lines[: CSV_ROWS + 1])), delimiter=delimiter)
    try:
        rows = [tuple(row) for row in reader]
    except csv.Error:
        return Preview(path, Kind.TEXT, text="\n".join(lines[: CSV_ROWS + 1]), cut=True)
    if not rows:
        return Preview(path, Kind.CSV)
    return Preview(path, Kind.CSV, header=rows[0], rows=tuple(rows[1:]), cut=cut or len(lines) > CSV_ROWS + 1)
