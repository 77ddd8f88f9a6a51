"""A run store in a local folder: the embedded default, no server and no account."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .base import Store, StoredObject, check_key, check_prefix

__all__ = ["LocalStore"]

RACY_SECONDS = 2  # the widest mtime granularity of common local file systems (FAT: 2 s)


class LocalStore(Store):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        self.location = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def _write_atomically(self, key: str, fill, *, if_absent: bool) -> bool:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
            if if_absent:
                # link() fails if the name exists, so two writers cannot both win.
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    return False
                return True
            os.replace(tmp, target)
            return True
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _put_file(self, key: str, path: Path, *, if_absent: bool) -> bool:
        def fill(handle) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, handle, 1024 * 1024)

        return self._write_atomically(key, fill, if_absent=if_absent)

    def _put_bytes(self, key: str, data: bytes, *, if_absent: bool) -> bool:
        return self._write_atomically(key, lambda handle: handle.write(data), if_absent=if_absent)

    def _get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path.read_bytes()

    def _get_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise FileNotFoundError(key)
        shutil.copyfile(source, path)

    def _list(self, prefix: str) -> Iterator[StoredObject]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # an in-flight atomic write
                full = Path(dirpath) / name
                yield StoredObject(full.relative_to(self.root).as_posix(), full.stat().st_size)

    def list_folders(self, prefix: str, start: str = "") -> list[str]:
        try:
            with os.scandir(self._path(check_prefix(prefix))) as entries:
                return sorted(e.name for e in entries if e.name.startswith(start) and e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def listing_stamp(self, prefix: str) -> str | None:
        # A folder's mtime changes when an entry is added, removed or renamed in it, but with the
        # kernel's coarse clock: a change in the same tick as the one read leaves it as it was.
        # So a stamp younger than RACY_SECONDS is not vouched for (git's "racily clean" entries).
        try:
            info = os.stat(f"{self.location}/{check_prefix(prefix)}")
        except (FileNotFoundError, NotADirectoryError):
            return None
        if time.time_ns() - info.st_mtime_ns < RACY_SECONDS * 1e9:
            return None
        return f"{info.st_mtime_ns}-{info.st_ino}"

    def stamp(self, key: str) -> str | None:
        # Writes replace the file by renaming a new one into place, so the inode changes too.
        try:
            info = os.stat(f"{self.location}/{check_key(key)}")  # a string, not a Path: 10,000 per listing
        except (FileNotFoundError, NotADirectoryError):
            return None
        return f"{info.st_mtime_ns}-{info.st_size}-{info.st_ino}"

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
