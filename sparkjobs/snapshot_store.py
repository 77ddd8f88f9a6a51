"""Content-addressed snapshots in a run store, so code that has not changed is never sent twice.

Layout: ``objects/<ab>/<sha256>`` holds each file's bytes once; ``snapshots/<digest>/manifest.json``
lists a snapshot's files; ``snapshots/<digest>/COMPLETE`` is written last. A snapshot whose marker
exists is skipped entirely. An interrupted upload leaves objects but no marker, so the next save
uploads only what is missing and then writes the marker: nothing is lost and, since every object
is written whole under its own digest, nothing is corrupt.

An object's content always matches its key: what is uploaded is first read into memory (or a
private temporary copy, for large files) and hashed, so a file edited between hashing and
uploading can never be stored under the old digest. Restored files are hashed again.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import SnapshotError, StorageError
from .snapshot import Snapshot, SnapshotEntry, digest_of, forget_cached_digests
from .storage.base import ProgressCallback, Store, safe_join, sha256_file

#: Objects up to this size are read into memory to be hashed and sent; larger ones are copied
#: to a private temporary file first, which nothing else can change before it is sent.
_IN_MEMORY = 16 * 1024 * 1024

__all__ = ["SnapshotStore", "SaveReport"]


@dataclass(frozen=True)
class SaveReport:
    digest: str
    already_complete: bool
    uploaded_files: int
    uploaded_bytes: int  # file contents plus manifest and marker


class SnapshotStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def object_key(sha256: str) -> str:
        return f"objects/{sha256[:2]}/{sha256}"

    @staticmethod
    def manifest_key(digest: str) -> str:
        return f"snapshots/{digest}/manifest.json"

    @staticmethod
    def marker_key(digest: str) -> str:
        return f"snapshots/{digest}/COMPLETE"

    def is_complete(self, digest: str) -> bool:
        return self.store.exists(self.marker_key(digest))

    def load_manifest(self, digest: str) -> tuple[SnapshotEntry, ...]:
        try:
            data = json.loads(self.store.get_bytes(self.manifest_key(digest)))
        except FileNotFoundError:
            raise SnapshotError(f"Snapshot {digest} is not in the run store at {self.store.location}.") from None
        entries = tuple(SnapshotEntry(**f) for f in data["files"])
        if digest_of(entries) != digest:
            raise SnapshotError(f"Snapshot {digest} has a manifest that does not match its digest.")
        return entries

    def save(
        self,
        snapshot: Snapshot,
        *,
        known_complete: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> SaveReport:
        """Store snapshot; ``known_complete`` names an earlier complete snapshot whose objects
        can be assumed present, which turns a one-file change into one upload."""
        if self.is_complete(snapshot.digest):
            return SaveReport(snapshot.digest, True, 0, 0)
        present: set[str] = set()
        if known_complete and known_complete != snapshot.digest and self.is_complete(known_complete):
            present = {e.sha256 for e in self.load_manifest(known_complete)}
        wanted = {e.sha256: e for e in snapshot.entries if e.sha256 not in present}
        with ThreadPoolExecutor(max_workers=self.store.max_workers) as pool:
            missing = [
                entry
                for entry, exists in zip(
                    wanted.values(), pool.map(lambda e: self.store.exists(self.object_key(e.sha256)), wanted.values())
                )
                if not exists
            ]
            uploaded = list(pool.map(lambda e: self._upload_object(snapshot, e, progress), missing))
        manifest = snapshot.manifest_bytes()
        marker = b""  # its existence is the message; the manifest already says the rest
        self.store.put_bytes(self.manifest_key(snapshot.digest), manifest)
        self.store.put_bytes(self.marker_key(snapshot.digest), marker)
        return SaveReport(snapshot.digest, False, len(uploaded), sum(uploaded) + len(manifest) + len(marker))

    def _upload_object(self, snapshot: Snapshot, entry: SnapshotEntry, progress: ProgressCallback | None) -> int:
        # The file may have changed since it was hashed; storing it under the old digest
        # would corrupt every snapshot that shares that object. So the bytes sent are the bytes
        # hashed here, never the file read a second time.
        path = snapshot.root / entry.path
        key = self.object_key(entry.sha256)
        with open(path, "rb") as source:
            if entry.size <= _IN_MEMORY:
                data = source.read(_IN_MEMORY + 1)
                self._check_unchanged(snapshot, entry, len(data), hashlib.sha256(data).hexdigest())
                self.store.put_bytes(key, data, if_absent=True)
            else:
                with tempfile.TemporaryDirectory(prefix="sparkjobs-object-") as folder:
                    copy = Path(folder) / "object"
                    digest = hashlib.sha256()
                    with open(copy, "wb") as writer:
                        while chunk := source.read(1024 * 1024):
                            digest.update(chunk)
                            writer.write(chunk)
                    self._check_unchanged(snapshot, entry, copy.stat().st_size, digest.hexdigest())
                    self.store.put_file(key, copy, if_absent=True)
        if progress:
            progress(entry.size)
        return entry.size

    @staticmethod
    def _check_unchanged(snapshot: Snapshot, entry: SnapshotEntry, size: int, sha256: str) -> None:
        if (size, sha256) != (entry.size, entry.sha256):
            forget_cached_digests(snapshot)
            raise SnapshotError(f"{entry.path} changed after the snapshot was taken; run again.")

    def restore(self, digest: str, dest: Path) -> tuple[SnapshotEntry, ...]:
        """Write snapshot ``digest`` into dest (which must be empty or absent)."""
        if not self.is_complete(digest):
            raise SnapshotError(f"Snapshot {digest} is incomplete or missing in {self.store.location}.")
        entries = self.load_manifest(digest)
        dest.mkdir(parents=True, exist_ok=True)
        if any(dest.iterdir()):
            raise SnapshotError(f"Cannot restore into {dest}: the folder is not empty.")

        def fetch(entry: SnapshotEntry) -> None:
            target = safe_join(dest, entry.path)
            try:
                self.store.get_file(self.object_key(entry.sha256), target)
            except FileNotFoundError:
                raise StorageError(f"Snapshot {digest} is missing the contents of {entry.path}.") from None
            if sha256_file(target) != entry.sha256:
                raise StorageError(f"Snapshot {digest} has corrupt contents for {entry.path} in {self.store.location}.")
            if entry.executable:
                os.chmod(target, 0o755)

        with ThreadPoolExecutor(max_workers=self.store.max_workers) as pool:
            list(pool.map(fetch, entries))
        return entries
