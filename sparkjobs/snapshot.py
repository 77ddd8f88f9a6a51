"""Turn a project folder into a Snapshot: the files that run, their digests, and one digest for all.

The snapshot digest depends only on relative paths and file contents (not mtimes, owners or
the folder's location), so the same code always has the same digest on every machine.
Hashing is the expensive part, so a per-project cache keyed by (path, size, mtime_ns) lets an
unchanged project be recognised from ``stat`` calls alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pathspec

from .errors import SnapshotError
from .storage.base import sha256_file

__all__ = ["SnapshotEntry", "Snapshot", "build_snapshot", "materialise", "ALWAYS_EXCLUDED"]

#: Never part of a snapshot: run results, version control, caches. The run store is excluded
#: too when it lies inside the project (added at build time).
ALWAYS_EXCLUDED = ("outputs/", ".git/", ".sparkjobs/", "__pycache__/", "*.pyc")
IGNORE_FILES = (".amlignore", ".gitignore")


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


class _IgnoreRules:
    """The user's rules, plus exclusions that no ``!pattern`` in them can undo."""

    def __init__(self, root: Path, extra_excludes: list[str]) -> None:
        self._always = pathspec.GitIgnoreSpec.from_lines(list(ALWAYS_EXCLUDED) + extra_excludes)
        lines: list[str] = []
        for name in IGNORE_FILES:
            path = root / name
            if path.is_file():
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
                break  # .amlignore replaces .gitignore, as in Azure ML Workbench
        self._user = pathspec.GitIgnoreSpec.from_lines(lines)

    def match_file(self, relative: str) -> bool:
        return self._always.match_file(relative) or self._user.match_file(relative)


class _DigestCache:
    """path -> (size, mtime_ns, sha256), persisted as one JSON file per project."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.dirty = False
        if path is not None:
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    def lookup(self, rel: str, st: os.stat_result) -> str | None:
        hit = self.entries.get(rel)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        return None

    def remember(self, rel: str, st: os.stat_result, digest: str) -> None:
        self.entries[rel] = [st.st_size, st.st_mtime_ns, digest]
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
    return cache_dir / (hashlib.sha256(str(root).encode()).hexdigest()[:32] + ".json")


def _walk(root: Path, spec: _IgnoreRules) -> tuple[list[tuple[str, Path, os.stat_result]], list[str]]:
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
            if full.is_symlink():
                target = full.resolve()
                if root_real not in target.parents or not target.is_file():
                    skipped.append(rel)
                    continue
            try:
                st = full.stat()
            except OSError as exc:
                raise SnapshotError(f"Cannot read {full}: {exc.strerror}.") from exc
            if stat.S_ISREG(st.st_mode):
                files.append((rel, full, st))
    return files, skipped


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
) -> Snapshot:
    """Scan root and return its Snapshot; raise SnapshotError if it is over cap_bytes."""
    root = Path(root).resolve()
    spec = _IgnoreRules(root, extra_excludes or [])
    files, skipped = _walk(root, spec)
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
    return Snapshot(root, tuple(entries), digest_of(entries), tuple(skipped))


def materialise(snapshot: Snapshot, dest: Path) -> None:
    """Copy the snapshot's files from the project into dest, a fresh folder.

    Copies, never links: a script that edits a file in its working copy must not reach the
    user's project. A file that changed after it was hashed would make the recorded digest a
    lie, so that is an error rather than a silent mismatch.
    """
    dest.mkdir(parents=True, exist_ok=True)
    made: set[Path] = set()
    for entry in snapshot.entries:
        source = snapshot.root / entry.path
        target = dest / entry.path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        shutil.copyfile(source, target)
        if entry.executable:
            target.chmod(0o755)
        if target.stat().st_size != entry.size:
            raise SnapshotError(f"{entry.path} changed while the snapshot was taken; run again.")
