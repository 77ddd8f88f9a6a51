"""The Store seam: a handful of primitives per backend, everything else written once here.

Keys are relative POSIX paths (``runs/ID/run.json``). The public methods check keys and then
call the ``_``-prefixed primitives a backend implements, so no backend can be handed ``..``.
A missing key raises the built-in ``FileNotFoundError``.
"""
from __future__ import annotations

import abc
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import ArtifactTransferError, UnsafePathError

__all__ = ["Store", "StoredObject", "TransferResult", "check_key", "regular_files", "safe_join", "sha256_file"]

ProgressCallback = Callable[[int], None]
"""Called with a byte count each time that many more bytes have moved."""
ProgressFactory = Callable[[str, int], "ProgressCallback | None"]
"""Given a label and a total, returns the callback that hears of progress towards it, or None."""

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


@dataclass(frozen=True)
class TransferResult:
    key: str
    size: int
    sha256: str


def check_key(key: str) -> str:
    """Return ``key`` if it is a clean relative POSIX path, else raise UnsafePathError."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise UnsafePathError(f"Storage key {key!r} is not a relative POSIX path.")
    # Split by hand: PurePosixPath would fold "a//b" and "a/./b" into "a/b", which a blob
    # store keeps as different names (and HTTP clients rewrite).
    parts = key.split("/")
    if any(part in ("..", ".", "") for part in parts):
        raise UnsafePathError(f"Storage key {key!r} may not contain '..', '.' or empty parts.")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix is a key or the empty string; a trailing slash is allowed."""
    stripped = prefix.rstrip("/")
    if stripped:
        check_key(stripped)
    return stripped


def safe_join(root: Path, relative: str) -> Path:
    """Join ``relative`` under ``root``, refusing anything that would land outside it."""
    check_key(relative)
    root_resolved = root.resolve()
    target = (root_resolved / relative).resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise UnsafePathError(f"Path {relative!r} would escape {root}.")
    return target


def regular_files(folder: Path, refused: dict[str, str]) -> list[Path]:
    """The regular files below ``folder``, sorted, never following a symbolic link; ``refused``
    receives every link and special file (a FIFO would block a reader) with the reason."""
    found: list[Path] = []
    for parent, dirnames, filenames in os.walk(folder):  # os.walk does not descend into links
        base = Path(parent)
        for name in sorted(dirnames + filenames):
            path = base / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                refused[path.relative_to(folder).as_posix()] = refusal_reason(path)
            elif path.is_file():
                found.append(path)
        dirnames.sort()
    return sorted(found)


def refusal_reason(path: Path) -> str:
    if path.is_symlink():
        return f"a symbolic link to {os.readlink(path)}, which sparkjobs does not follow"
    return "not a regular file"


def sha256_file(path: Path, progress: ProgressCallback | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


class Store(abc.ABC):
    """A flat key→bytes store. Backends implement the primitives; the rest is derived."""

    #: Human-readable location, e.g. a folder path or a wasbs:// URL. Never holds a secret.
    location: str

    def prepare_writes(self) -> None:
        """Ready the store for writers other than itself (a Spark job, through Hadoop): a backend
        that must create something first does it here (Azure: the container). Folders need nothing."""

    # ---- primitives -------------------------------------------------------------------------
    @abc.abstractmethod
    def _put_file(self, key: str, path: Path, *, if_absent: bool) -> bool:
        """Store the file's bytes at key. With if_absent, return False instead of overwriting."""

    @abc.abstractmethod
    def _put_bytes(self, key: str, data: bytes, *, if_absent: bool) -> bool:
        """Store data at key. With if_absent, return False instead of overwriting."""

    @abc.abstractmethod
    def _get_bytes(self, key: str) -> bytes:
        """Return the bytes at key; FileNotFoundError when absent."""

    @abc.abstractmethod
    def _get_file(self, key: str, path: Path) -> None:
        """Write the bytes at key to path (whose parent exists); FileNotFoundError when absent."""

    @abc.abstractmethod
    def _list(self, prefix: str) -> Iterator[StoredObject]:
        """Yield every object whose key starts with ``prefix + '/'`` (or all, for '')."""

    @abc.abstractmethod
    def _exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def _delete(self, key: str) -> None:
        """Delete key; deleting an absent key is not an error."""

    # ---- public API (keys checked here, once) ----------------------------------------------
    def put_file(self, key: str, path: Path | str, *, if_absent: bool = False) -> bool:
        return self._put_file(check_key(key), Path(path), if_absent=if_absent)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        return self._put_bytes(check_key(key), data, if_absent=if_absent)

    def get_bytes(self, key: str) -> bytes:
        return self._get_bytes(check_key(key))

    def get_file(self, key: str, path: Path | str) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._get_file(check_key(key), path)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        return self._list(check_prefix(prefix))

    def exists(self, key: str) -> bool:
        return self._exists(check_key(key))

    def delete(self, key: str) -> None:
        self._delete(check_key(key))

    # ---- change detection, for the run index (derived here; backends may do it faster) ------
    #: Whether listing a folder of 10,000 entries costs little (a local folder), or many
    #: requests (Blob lists at most 5,000 names per request).
    cheap_listing: bool = True

    def listing_stamp(self, prefix: str) -> str | None:
        """A token that changes whenever a folder is added under prefix or removed from it; None
        when the backend has none, or cannot vouch for it yet (then list again)."""
        return None

    def list_folders(self, prefix: str, start: str = "") -> list[str]:
        """The sorted names of the folders directly under prefix whose names begin with start
        (the run ids under ``runs``), without listing what they hold when the backend can."""
        prefix = check_prefix(prefix)
        names = set()
        for obj in self.list(prefix):
            parts = obj.key[len(prefix) + 1 :].split("/") if prefix else obj.key.split("/")
            if len(parts) > 1 and parts[0].startswith(start):
                names.add(parts[0])
        return sorted(names)

    def stamp(self, key: str) -> str | None:
        """A token that changes whenever the object at key is replaced; None when it is absent.
        Derived from the contents here; backends answer from metadata (an ETag, a stat)."""
        try:
            return hashlib.sha256(self.get_bytes(key)).hexdigest()
        except FileNotFoundError:
            return None

    def stamps(self, keys: list[str]) -> dict[str, str | None]:
        return {key: self.stamp(key) for key in keys}

    def get_if_changed(self, key: str, stamp: str | None) -> tuple[bytes, str] | None:
        """The object's bytes and their stamp, or None while its stamp is still ``stamp``;
        FileNotFoundError when it is absent. The bytes are read after the stamp is taken, so
        they are never older than it. Backends may do it in one request (a conditional GET)."""
        current = self.stamp(key)
        if current is None:
            raise FileNotFoundError(key)
        return None if current == stamp else (self.get_bytes(key), current)

    def put_json(self, key: str, value: Any, *, if_absent: bool = False) -> bool:
        data = json.dumps(value, indent=2, sort_keys=True).encode()
        return self.put_bytes(key, data, if_absent=if_absent)

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    # ---- tree transfer, written once -------------------------------------------------------
    max_workers: int = 8

    def upload_tree(
        self,
        local_dir: Path | str,
        prefix: str,
        *,
        progress: ProgressCallback | None = None,
    ) -> list[TransferResult]:
        """Upload every regular file below local_dir to prefix/<relative path>, in parallel.

        Each file is hashed while it is read for upload; the backend verifies what it received.
        Symbolic links are never followed, local_dir itself included: a job could otherwise
        point its outputs at any file this user can read. They, and anything else that is not
        a regular file, are refused by name.
        Raises ArtifactTransferError naming every file that failed or was refused, after trying
        all the others.
        """
        local_dir = Path(local_dir)
        prefix = check_prefix(prefix)
        if local_dir.is_symlink():
            reason = refusal_reason(local_dir)
            raise ArtifactTransferError(f"{local_dir} is {reason}; nothing in it was stored.", {prefix: reason})
        jobs: dict[str, Path] = {}
        refused: dict[str, str] = {}
        for path in regular_files(local_dir, refused):
            relative = path.relative_to(local_dir).as_posix()
            jobs[f"{prefix}/{relative}" if prefix else relative] = path
        refused = {(f"{prefix}/{relative}" if prefix else relative): why for relative, why in refused.items()}
        return self._transfer(jobs, self._upload_one, progress, refused)

    def download_tree(
        self,
        prefix: str,
        local_dir: Path | str,
        *,
        progress: ProgressCallback | None = None,
    ) -> list[TransferResult]:
        """Download every object under prefix into local_dir, refusing keys that would escape."""
        local_dir = Path(local_dir)
        prefix = check_prefix(prefix)
        jobs = {}
        for obj in self.list(prefix):
            relative = obj.key[len(prefix) + 1 :] if prefix else obj.key
            jobs[obj.key] = safe_join(local_dir, relative)
        return self._transfer(jobs, self._download_one, progress)

    def _upload_one(self, key: str, path: Path, progress: ProgressCallback | None) -> TransferResult:
        size = path.stat().st_size
        self.put_file(key, path)
        digest = sha256_file(path)
        if progress:
            progress(size)
        return TransferResult(key, size, digest)

    def _download_one(self, key: str, path: Path, progress: ProgressCallback | None) -> TransferResult:
        self.get_file(key, path)
        size = path.stat().st_size
        if progress:
            progress(size)
        return TransferResult(key, size, sha256_file(path))

    def _transfer(
        self,
        jobs: dict[str, Path],
        one: Callable[[str, Path, ProgressCallback | None], TransferResult],
        progress: ProgressCallback | None,
        refused: dict[str, str] | None = None,
    ) -> list[TransferResult]:
        results: list[TransferResult] = []
        failed: dict[str, str] = dict(refused or {})
        if not jobs and not failed:
            return results
        workers = max(1, min(self.max_workers, len(jobs)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(one, key, path, progress): key for key, path in jobs.items()}
            for future in as_completed(futures):
                key = futures[future]
                try:
                    results.append(future.result())
                except Exception as exc:  # every failure is reported, none dropped
                    failed[key] = f"{type(exc).__name__}: {exc}"
        results.sort(key=lambda r: r.key)
        if failed:
            names = ", ".join(sorted(failed))
            raise ArtifactTransferError(
                f"{len(failed)} of {len(jobs) + len(refused or {})} files failed to transfer: {names}.", failed, results
            )
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"
