"""Environments in a run store (or a cluster's storage), content-addressed like snapshots.

Layout: ``environments/<digest>/archive.tar.gz``, ``environments/<digest>/manifest.json`` and
``environments/<digest>/COMPLETE``, written in that order. Only an environment whose marker
exists is ever used, so an upload cut short is uploaded again whole, never reused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import StorageError
from ..storage.base import Store, sha256_file
from . import BuiltEnvironment, ResolvedPackage

__all__ = ["EnvironmentStore", "StoredEnvironment", "manifest_of", "from_manifest"]

PREFIX = "environments"


@dataclass(frozen=True)
class StoredEnvironment:
    digest: str
    uploaded_bytes: int  # 0 when it was there already


def manifest_of(environment: BuiltEnvironment, archive_sha256: str) -> dict:
    return {
        "digest": environment.digest,
        "python_version": environment.python_version,
        "platform": environment.platform,
        "packages": [{"name": p.name, "version": p.version, "sha256": p.sha256} for p in environment.packages],
        "archive_sha256": archive_sha256,
        "source": environment.source,
    }


def from_manifest(data: dict, archive: Path, unpacked: Path) -> BuiltEnvironment:
    return BuiltEnvironment(
        digest=data["digest"],
        python_version=data["python_version"],
        platform=data["platform"],
        packages=tuple(ResolvedPackage(p["name"], p["version"], p["sha256"]) for p in data["packages"]),
        archive=archive,
        unpacked=unpacked,
        source=data.get("source", ""),
    )


class EnvironmentStore:
    """Puts built environments into a Store once; the shipping side calls ``save`` with the
    cluster's storage, and reads ``archive_key`` to name the archive to Spark or Livy."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def archive_key(digest: str) -> str:
        return f"{PREFIX}/{digest}/archive.tar.gz"

    @staticmethod
    def manifest_key(digest: str) -> str:
        return f"{PREFIX}/{digest}/manifest.json"

    @staticmethod
    def marker_key(digest: str) -> str:
        return f"{PREFIX}/{digest}/COMPLETE"

    def is_complete(self, digest: str) -> bool:
        return self.store.exists(self.marker_key(digest))

    def save(self, environment: BuiltEnvironment) -> StoredEnvironment:
        """Upload the archive and its manifest, then the marker; nothing when already complete."""
        digest = environment.digest
        if self.is_complete(digest):
            return StoredEnvironment(digest, 0)
        manifest = json.loads((environment.archive.parent / "manifest.json").read_text())
        if sha256_file(environment.archive) != manifest["archive_sha256"]:
            raise StorageError(f"The local copy of environment {digest[:12]} at {environment.archive} is damaged; "
                               f"delete {environment.archive.parent} and run again.")
        body = json.dumps(manifest, indent=1, sort_keys=True).encode()
        self.store.put_file(self.archive_key(digest), environment.archive)
        self.store.put_bytes(self.manifest_key(digest), body)
        self.store.put_bytes(self.marker_key(digest), b"")  # last: its existence says the rest is whole
        return StoredEnvironment(digest, environment.archive.stat().st_size + len(body))

    def manifest(self, digest: str) -> dict | None:
        if not self.is_complete(digest):
            return None
        return json.loads(self.store.get_bytes(self.manifest_key(digest)))
