"""Turn a project folder into a Snapshot: the files that run, their digests, and one digest for all.

The snapshot digest depends only on relative paths and file contents (not mtimes, owners or
the folder's location), so the same code always has the same digest on every machine.
Hashing is the expensive part, so a per-project cache keyed by path, size, mtime, ctime and
inode lets an unchanged project be recognised from ``stat`` calls alone. The ctime matters:
``cp -p``, ``rsync -a`` and archive extraction restore a file's mtime after changing it, but
nothing can set ctime back, so an edit is never mistaken for the cached content.

The code that runs must be byte for byte the snapshot that is recorded, so
:func:`materialise` hashes what it copies, and a file that changed after it was hashed is an
error (and the cache is dropped, so the next run hashes afresh) rather than a silent lie.

Every file name must be UTF-8: the manifest, the digest and blob names are UTF-8, and a name
that is not cannot be stored faithfully, so the snapshot is refused naming the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import SnapshotError
from .snapshot_ignore import IGNORE_FILES, IgnoreRules
from .storage.base import sha256_file

__all__ = [
    "SnapshotEntry",
    "Snapshot",
    "build_snapshot",
    "materialise",
    "forget_cached_digests",
    "ALWAYS_EXCLUDED",
    "IGNORE_FILES",
]

#: Never part of a snapshot: run results, version control, caches. The run store is excluded
#: too when it lies inside the project (added at build time).
ALWAYS_EXCLUDED = ("outputs/", ".git/", ".sparkjobs/", "__pycache__/", "*.pyc")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SnapshotEntry:
    path: str  # relative POSIX path
    size: int
    sha256: str
    executable: bool = False


@dataclass(frozen=True)
class Snapshot:
    root: Path
    entries: tuple[SnapshotEntry, ...]
    digest: str
    skipped_links: tuple[str, ...] = ()  # symlinks left out because they point outside the project
    cache_file: Path | None = None  # where its digests were cached, dropped if they prove stale

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def manifest(self) -> dict:
        return {
            "version": 1,
            "digest": self.digest,
            "files": [
                {"path": e.path, "size": e.size, "sha256": e.sha256, "executable": e.executable}
                for e in self.entries
            ],
        }

    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest(), sort_keys=True, separators=(",", ":")).encode()


def digest_of(entries: list[SnapshotEntry] | tuple[SnapshotEntry, ...]) -> str:
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.path}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


class _DigestCache:
    """path -> (size, mtime_ns, ctime_ns, inode, sha256), persisted as one JSON file per project."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.dirty = False
        if path is not None:
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}
            if not isinstance(self.entries, dict):
                self.entries = {}

    @staticmethod
    def _key(st: os.stat_result) -> list:
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def lookup(self, rel: str, st: os.stat_result) -> str | None:
        hit = self.entries.get(rel)
        if isinstance(hit, list) and len(hit) == 5 and hit[:4] == self._key(st):
            return hit[4]
        return None

    def remember(self, rel: str, st: os.stat_result, digest: str) -> None:
        self.entries[rel] = [*self._key(st), digest]
        self.dirty = True

    def save(self, seen: set[str]) -> None:
        if self.path is None:
            return
        if set(self.entries) - seen:
            self.entries = {k: v for k, v in self.entries.items() if k in seen}
            self.dirty = True
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(self.entries, handle, separators=(",", ":"))
        os.replace(tmp, self.path)


def cache_path_for(cache_dir: Path, root: Path) -> Path:
    return cache_dir / (hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".json")


def forget_cached_digests(snapshot: Snapshot) -> None:
    """A file proved to differ from its cached digest: hash everything afresh next time."""
    if snapshot.cache_file is not None:
        try:
            snapshot.cache_file.unlink()
        except FileNotFoundError:
            pass


def shown(relative: str) -> str:
    """A relative path as text that can be printed, bytes that are not UTF-8 as \\xNN."""
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _included_file(root_real: Path, full: Path) -> os.stat_result | None:
    """The stat of a regular file to snapshot; None for a symlink leading out of the project."""
    if full.is_symlink():
        target = full.resolve()
        if root_real not in target.parents or not target.is_file():
            return None
    try:
        st = full.stat()
    except OSError as exc:
        raise SnapshotError(f"Cannot read {shown(str(full))}: {exc.strerror}.") from exc
    return st if stat.S_ISREG(st.st_mode) else None


def _walk(root: Path, spec: IgnoreRules) -> tuple[list[tuple[str, Path, os.stat_result]], list[str]]:
    files: list[tuple[str, Path, os.stat_result]] = []
    skipped: list[str] = []
    root_real = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        kept = []
        for name in sorted(dirnames):
            rel = rel_dir + name
            if spec.match_file(rel + "/"):
                continue
            if os.path.islink(os.path.join(dirpath, name)):
                skipped.append(rel)  # never follow directory links: loops and escapes
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = rel_dir + name
            if spec.match_file(rel):
                continue
            full = Path(dirpath, name)
            st = _included_file(root_real, full)
            if st is not None:
                files.append((rel, full, st))
            elif full.is_symlink():
                skipped.append(rel)
    return files, skipped


def _add_always_included(
    root: Path, spec: IgnoreRules, files: list[tuple[str, Path, os.stat_result]], always: Sequence[str]
) -> None:
    """The configuration a run used is kept whatever .amlignore says (never over the fixed
    exclusions), so the run can be reproduced from its snapshot."""
    present = {rel for rel, _, _ in files}
    root_real = root.resolve()
    for rel in always:
        parts = rel.split("/")
        if rel in present or rel.startswith("/") or ".." in parts or spec.always_excluded(rel):
            continue
        full = root.joinpath(*parts)
        # A linked folder on the way (never followed by the walk) must not lead outside.
        if os.path.lexists(full) and root_real in full.resolve().parents:
            st = _included_file(root_real, full)
            if st is not None:
                files.append((rel, full, st))
                present.add(rel)


def _refuse_undecodable_names(files: list[tuple[str, Path, os.stat_result]]) -> None:
    bad = []
    for rel, _, _ in files:
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            bad.append(shown(rel))
    if bad:
        listed = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise SnapshotError(
            f"The project has file names that are not valid UTF-8, which a snapshot cannot record faithfully: "
            f"{listed}. Rename them, or exclude them in .amlignore."
        )


def _cap_message(files: list[tuple[str, Path, os.stat_result]], total: int, cap: int) -> str:
    largest = sorted(files, key=lambda f: f[2].st_size, reverse=True)[:5]
    listed = ", ".join(f"{rel} ({st.st_size / 1e6:.1f} MB)" for rel, _, st in largest)
    return (
        f"The project is {total / 1e6:.1f} MB, over the snapshot cap of {cap / 1e6:.1f} MB. "
        f"Largest files: {listed}. Exclude them in .amlignore (gitignore syntax), keep data in the "
        f"shared folder or blob storage, or raise snapshotCapMB in aml_config/project.yml."
    )


def build_snapshot(
    root: Path | str,
    *,
    cap_bytes: int | None,
    cache_file: Path | None = None,
    extra_excludes: list[str] | None = None,
    always_include: Sequence[str] = (),
) -> Snapshot:
    """Scan root and return its Snapshot; raise SnapshotError if it is over cap_bytes.

    ``always_include`` names relative POSIX paths kept even when the ignore file excludes
    them (the configuration files of the run)."""
    root = Path(root).resolve()
    spec = IgnoreRules(root, list(ALWAYS_EXCLUDED) + list(extra_excludes or []))
    files, skipped = _walk(root, spec)
    _add_always_included(root, spec, files, always_include)
    _refuse_undecodable_names(files)
    total = sum(st.st_size for _, _, st in files)
    if cap_bytes is not None and total > cap_bytes:
        raise SnapshotError(_cap_message(files, total, cap_bytes))
    cache = _DigestCache(cache_file)
    entries = []
    for rel, full, st in files:
        digest = cache.lookup(rel, st)
        if digest is None:
            digest = sha256_file(full)
            cache.remember(rel, st, digest)
        entries.append(SnapshotEntry(rel, st.st_size, digest, bool(st.st_mode & stat.S_IXUSR)))
    cache.save({rel for rel, _, _ in files})
    return Snapshot(root, tuple(entries), digest_of(entries), tuple(shown(rel) for rel in skipped), cache_file)


def materialise(snapshot: Snapshot, dest: Path) -> None:
    """Copy the snapshot's files from the project into dest, a fresh folder.

    Copies, never links: a script that edits a file in its working copy must not reach the
    user's project. Each file is hashed as it is copied, so what runs is exactly what the
    digest names; a file that changed after it was hashed is an error, never a silent mismatch.
    """
    dest.mkdir(parents=True, exist_ok=True)
    made: set[Path] = set()
    for entry in snapshot.entries:
        source = snapshot.root / entry.path
        target = dest / entry.path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        if _copy_hashing(source, target) != (entry.size, entry.sha256):
            forget_cached_digests(snapshot)
            raise SnapshotError(
                f"{entry.path} changed after the snapshot was taken, so the run would not execute the recorded "
                "snapshot; run again."
            )
        if entry.executable:
            target.chmod(0o755)


def _copy_hashing(source: Path, target: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
