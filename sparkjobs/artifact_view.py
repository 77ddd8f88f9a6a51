"""Artifacts as people think of them: a folder Spark wrote is one thing, not its part files.

``df.write.csv("outputs/numbers")`` leaves ``part-*`` files, a ``.crc`` checksum beside each and
a ``_SUCCESS`` marker: one table to the person who wrote it. Every file is still stored and
listed in the run record; this is only how the record is shown (``runs show``, the run
summary, and the coming web page).

A folder is one entry when Spark finished writing it (it holds ``_SUCCESS``), or when it is a
Spark ML model: no files of its own, a ``metadata/`` table, and only such entries beside it
(``data/``, ``stages/``). An ordinary folder that merely holds a table, ``outputs/`` itself
included, stays a folder.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable

from .runs import Artifact

__all__ = ["ArtifactEntry", "EntryKind", "group_artifacts"]

_SUCCESS = "_SUCCESS"


class EntryKind(str, enum.Enum):
    FILE = "file"
    SPARK_TABLE = "Spark table"
    SPARK_MODEL = "Spark ML model"


@dataclass(frozen=True)
class ArtifactEntry:
    path: str  # a file's path, or a folder's ending with "/"
    kind: EntryKind
    files: int
    size: int


@dataclass
class _Folder:
    files: dict[str, Artifact] = field(default_factory=dict)
    folders: dict[str, "_Folder"] = field(default_factory=dict)

    def all_files(self) -> list[Artifact]:
        found = list(self.files.values())
        for child in self.folders.values():
            found += child.all_files()
        return found

    def kind(self) -> EntryKind | None:
        """What Spark made of this folder, or None if it is an ordinary folder."""
        if _SUCCESS in self.files:
            return EntryKind.SPARK_TABLE
        if "metadata" in self.folders and self._only_spark_parts():
            return EntryKind.SPARK_MODEL
        return None

    def _only_spark_parts(self) -> bool:
        """No files of its own, and every folder a table, a model, or a folder of those (a
        pipeline model's ``stages/``)."""
        return not self.files and bool(self.folders) and all(
            child.kind() is not None or child._only_spark_parts() for child in self.folders.values()
        )


def _tree(artifacts: Iterable[Artifact]) -> _Folder:
    root = _Folder()
    for artifact in artifacts:
        *folders, name = artifact.path.split("/")
        here = root
        for part in folders:
            here = here.folders.setdefault(part, _Folder())
        here.files[name] = artifact
    return root


def _entries(folder: _Folder, prefix: str) -> list[ArtifactEntry]:
    kind = folder.kind() if prefix else None
    if kind is not None:
        files = folder.all_files()
        return [ArtifactEntry(prefix, kind, len(files), sum(a.size for a in files))]
    entries = [ArtifactEntry(a.path, EntryKind.FILE, 1, a.size) for a in folder.files.values()]
    for name, child in folder.folders.items():
        entries += _entries(child, f"{prefix}{name}/")
    return entries


def group_artifacts(artifacts: Iterable[Artifact]) -> tuple[ArtifactEntry, ...]:
    """The run's artifacts as entries, sorted as ``ls`` sorts paths: a file each, and a Spark-written folder
    (``outputs/numbers/``) as one entry with its file count and total size."""
    return tuple(sorted(_entries(_tree(artifacts), ""), key=lambda entry: entry.path.rstrip("/").split("/")))
