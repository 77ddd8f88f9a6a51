"""An environment's digest, and its one archive: a deterministic .tar.gz whose root is the import root.

The digest covers what was resolved (every package's name, version and wheel SHA-256), the
platform and the Python version, so the same resolution is the same environment wherever it
is built. The archive is deterministic too (sorted entries, fixed times and owners, no gzip
time stamp): the same files give the same bytes.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from pathlib import Path

from . import ResolvedPackage

__all__ = ["environment_digest", "pack", "prune", "unpack"]

#: Bumped when the archive's layout changes, so an old archive is never taken for a new one.
LAYOUT = 1
#: 1980-01-01: some tools refuse a time of 0, and any fixed time keeps the bytes stable.
_FIXED_TIME = 315532800
#: pip --target also writes console scripts (``bin/``) whose first line names this machine's
#: Python; they mean nothing on a cluster and would make two builds differ.
_DROPPED_AT_ROOT = ("bin",)


def environment_digest(packages: tuple[ResolvedPackage, ...], platform: str, python: str) -> str:
    body = {
        "layout": LAYOUT,
        "platform": platform,
        "python": python,
        "packages": sorted([p.name, p.version, p.sha256] for p in packages),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def prune(folder: Path) -> None:
    """Remove what pip wrote that is this machine's, not the environment's."""
    import shutil

    for name in _DROPPED_AT_ROOT:
        shutil.rmtree(folder / name, ignore_errors=True)
    for cache in sorted(folder.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)


def pack(folder: Path, archive: Path) -> str:
    """Write ``folder``'s contents as ``archive``; returns the archive's SHA-256."""
    paths = sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix())
    with open(archive, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as zipped:
            with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for path in paths:
                    info = tar.gettarinfo(str(path), arcname=path.relative_to(folder).as_posix())
                    if not (info.isdir() or info.isfile()):
                        continue  # links and devices have no place in a wheel's files
                    info.mtime, info.uid, info.gid, info.uname, info.gname = _FIXED_TIME, 0, 0, "", ""
                    info.mode = 0o755 if info.isdir() or os.access(path, os.X_OK) else 0o644
                    if info.isfile():
                        with open(path, "rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def unpack(archive: Path, dest: Path) -> None:
    """Unpack into ``dest``, refusing any member that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
            return
        root = dest.resolve()
        for member in tar.getmembers():  # pragma: no cover - Pythons without extraction filters
            target = (root / member.name).resolve()
            if not (member.isdir() or member.isfile()) or (target != root and root not in target.parents):
                raise ValueError(f"{archive} has an unsafe member {member.name!r}")
        tar.extractall(dest)
