"""This machine's cache of built environments, under ``$SPARKJOBS_HOME/cache/environments/``.

``<digest>/`` holds ``archive.tar.gz``, ``unpacked/`` (the same files, for the local target and
the driver) and ``manifest.json``. It is built in a ``.building-<pid>-*`` folder beside it and
renamed into place whole, so a build cut short is never taken for a built one. ``keys/<key>``
maps a declaring file's content, the platform and the Python to the digest resolved for them:
an unchanged file is not resolved again (pip takes seconds to resolve; a warm run may not).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from . import BuiltEnvironment
from .store import from_manifest

__all__ = ["EnvironmentCache"]

_STAGING = ".building-"


class EnvironmentCache:
    def __init__(self, home: Path) -> None:
        self.root = home / "cache" / "environments"

    def entry(self, digest: str) -> Path:
        return self.root / digest

    def load(self, digest: str) -> BuiltEnvironment | None:
        """The built environment, if this machine has all of it."""
        entry = self.entry(digest)
        try:
            data = json.loads((entry / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        archive, unpacked = entry / "archive.tar.gz", entry / "unpacked"
        if data.get("digest") != digest or not archive.is_file() or not unpacked.is_dir():
            return None
        return from_manifest(data, archive, unpacked)

    # ---- declaring content -> digest ------------------------------------------------------
    def known(self, key: str) -> dict | None:
        try:
            data = json.loads((self.root / "keys" / key).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("digest"), str) else None

    def remember(self, key: str, digest: str, notices: list[str]) -> None:
        folder = self.root / "keys"
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{key}.{os.getpid()}"
        partial.write_text(json.dumps({"digest": digest, "notices": notices}))
        os.replace(partial, folder / key)

    # ---- building -------------------------------------------------------------------------
    def staging(self) -> Path:
        """A private folder to build in; stale ones of builds whose process died are removed."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f"{_STAGING}*"):
            if not _alive(stale.name[len(_STAGING):].split("-", 1)[0]):
                shutil.rmtree(stale, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=self.root))

    def install(self, staging: Path, digest: str) -> None:
        """Move a finished build into place; if another build got there first, keep that one."""
        try:
            os.rename(staging, self.entry(digest))
        except OSError:
            if self.load(digest) is None:
                raise
            shutil.rmtree(staging, ignore_errors=True)


def _alive(pid_text: str) -> bool:
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
