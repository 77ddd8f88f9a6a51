"""Making the snapshot the working folder: as it is (local), from a zip in pyFiles, or copied file
by file from content-addressed storage, with the Python files shipped to executors."""
from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .console import brief, count, say
from .hadoop import Spark, read_json
from .spec import BootstrapError, LaunchSpec, child_uri, is_relative_posix

__all__ = ["FETCH_WORKERS", "EarlyCopy", "ManifestFile", "copy_snapshot_early", "module_paths", "prepare_snapshot", "sha256_of"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: Snapshot objects copied from storage at once; each copy is mostly waiting on the network.
FETCH_WORKERS = 8


class EarlyCopy:
    """The snapshot copied from storage in a thread while the SparkContext starts (seconds in
    yarn-cluster mode, as is copying a project file by file). The run's storage is readable
    without the run's credentials (the launch spec was just read from it), so nothing waits on
    them. A copy that failed is done again the usual way, whose error is the one reported."""

    def __init__(self, spec: LaunchSpec, spark: Spark, work: str) -> None:
        self._files: list[ManifestFile] | None = None
        self._thread = threading.Thread(target=self._copy, args=(spec, spark, work), name="sparkjobs-snapshot-copy",
                                        daemon=True)
        self._thread.start()

    def _copy(self, spec: LaunchSpec, spark: Spark, work: str) -> None:
        try:
            files = _manifest_files(read_json(spec.snapshot_manifest, spark, "snapshot manifest"), spec.snapshot_manifest)
            _copy_objects(files, spec.objects_uri or "", os.path.join(work, "snapshot"), spark)
        except Exception:  # noqa: BLE001 - copied again, and reported, by prepare_snapshot
            return
        self._files = files

    def files(self) -> list[ManifestFile] | None:
        self._thread.join()
        return self._files


def copy_snapshot_early(spec: LaunchSpec, spark: Spark, work: str) -> EarlyCopy | None:
    """Start copying a content-addressed snapshot now, if the SparkContext is still starting."""
    if spec.snapshot_manifest is None or spec.snapshot_archive is not None or not spark.context_starting:
        return None
    return EarlyCopy(spec, spark, work)


def prepare_snapshot(spec: LaunchSpec, spark: Spark, work: str, early: EarlyCopy | None = None) -> str:
    """Make the snapshot the working folder and return its root."""
    if spec.snapshot_archive is None and spec.snapshot_manifest is None:
        return os.getcwd()
    root = os.path.join(work, "snapshot")
    if spec.snapshot_archive is not None:
        _extract(_find_archive(spec.snapshot_archive), root)
    else:
        assert spec.objects_uri is not None  # the spec's validation requires it
        files = early.files() if early is not None else None
        if files is None:
            files = _manifest_files(read_json(spec.snapshot_manifest, spark, "snapshot manifest"), spec.snapshot_manifest)
            _copy_objects(files, spec.objects_uri, root, spark)
        say(f"copied {count(len(files), 'snapshot file')} ({count(sum(f.size for f in files), 'byte')}) from "
            f"{spec.objects_uri}{' while the SparkContext started' if early is not None and early.files() else ''}")
        _ship_modules(files, root, work, spark)
    os.chdir(root)
    return root


@dataclass(frozen=True)
class ManifestFile:
    path: str
    size: int
    sha256: str
    executable: bool


def _manifest_files(data: Any, where: str | None) -> list[ManifestFile]:
    """The files a snapshot manifest lists (``{"files": [{"path", "size", "sha256", "executable"}]}``),
    every entry checked: a path that is absolute or holds ``..`` could write outside the snapshot."""
    entries = data.get("files") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise BootstrapError(f"The snapshot manifest at {where} has no 'files' list.")
    files, problems = [], []
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not is_relative_posix(path) or "" in path.split("/") or "." in path.split("/"):
            problems.append(f"unsafe path {path!r}")
            continue
        size, sha = entry.get("size"), entry.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(sha, str) or not _SHA256.match(sha):
            problems.append(f"{path}: bad size or sha256")
            continue
        files.append(ManifestFile(path, size, sha, entry.get("executable") is True))
    if problems:
        raise BootstrapError(f"The snapshot manifest at {where} is invalid: " + "; ".join(problems[:5]) + ".")
    return files


def _copy_objects(files: list[ManifestFile], objects_uri: str, root: str, spark: Spark) -> None:
    """Copy each file's object into root, checking size and SHA-256, in a small thread pool."""
    for folder in sorted({root} | {os.path.dirname(os.path.join(root, *f.path.split("/"))) for f in files}):
        os.makedirs(folder, exist_ok=True)

    def fetch(entry: ManifestFile) -> str | None:
        target = os.path.join(root, *entry.path.split("/"))
        source = child_uri(objects_uri, f"{entry.sha256[:2]}/{entry.sha256}")
        try:
            spark.download(source, target)
        except Exception as exc:  # OSError or Py4JJavaError: say which file, then stop the run
            return f"{entry.path} ({source}): {brief(exc)}"
        if os.path.getsize(target) != entry.size or sha256_of(target) != entry.sha256:
            return f"{entry.path}: the stored object does not match the manifest"
        if entry.executable:
            os.chmod(target, 0o755)
        return None

    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        failed = [problem for problem in pool.map(fetch, files) if problem]
    if failed:
        raise BootstrapError(f"Cannot copy {count(len(failed), 'snapshot file')} from storage: " + "; ".join(failed[:3]) + ".")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def module_paths(files: list[ManifestFile]) -> list[str]:
    """What executors may import: every .py file, and every file inside a package folder."""
    packages = {f.path.rsplit("/", 1)[0] for f in files if f.path.endswith("/__init__.py")}
    return sorted(
        f.path for f in files if f.path.endswith(".py") or ("/" in f.path and f.path.rsplit("/", 1)[0] in packages)
    )


def _ship_modules(files: list[ManifestFile], root: str, work: str, spark: Spark) -> None:
    """Zip the snapshot's Python files and add them to the SparkContext for executors."""
    modules = module_paths(files)
    if not modules or not Spark.in_spark_submit():
        return  # no executors without spark-submit
    archive = os.path.join(work, "snapshot-modules.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in modules:
            bundle.write(os.path.join(root, *path.split("/")), path)
    spark.context().addPyFile(archive)


def _find_archive(name: str) -> str:
    """Where Spark put the archive shipped in pyFiles.

    yarn-cluster mode localises pyFiles into the container's working folder; client and local
    modes put their paths on sys.path (PYTHONPATH) and copy them under SparkFiles.
    """
    base = os.path.basename(name)
    candidates = [name, os.path.join(os.getcwd(), base)]
    for entry in sys.path:
        candidates.append(entry if os.path.basename(entry) == base else os.path.join(entry or ".", base))
    candidates.extend(_spark_files(base))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise BootstrapError(
        f"The snapshot archive {name} is not in the working folder, on sys.path or among SparkFiles; "
        "ship it with --py-files (Livy: pyFiles)."
    )


def _spark_files(base: str) -> list[str]:
    """SparkFiles' copy of a shipped file; SparkFiles needs a running context, so none without."""
    if "pyspark" not in sys.modules:
        return []
    from pyspark import SparkContext, SparkFiles

    if SparkContext._active_spark_context is None:
        return []
    return [SparkFiles.get(base)]


def _extract(archive: str, root: str) -> None:
    """Unpack the archive (zipfile refuses absolute and '..' names), keeping executable bits."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                target = bundle.extract(info, root)
                mode = (info.external_attr >> 16) & 0o777
                if mode & 0o111 and not info.is_dir():
                    os.chmod(target, mode)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BootstrapError(f"Cannot unpack the snapshot archive {archive}: {exc}.") from None
