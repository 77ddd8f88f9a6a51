"""Reproduce a run from its stored snapshot: run it again (``rerun``) or write it out (``restore``).

Every run records its snapshot's digest, and the snapshot (code and ``aml_config/``) is kept
content-addressed in the run store, so neither needs the working tree: a rerun restores the
snapshot into a private folder named after the run's project, runs it from there as any run
(its record says ``rerun_of``), and removes the folder. Both rebuild the tree through
``SnapshotStore.restore``, which checks every file against its SHA-256.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import CONFIG_DIR, available_runconfigs, load_run_settings
from .errors import ConfigError
from .references import ESCAPE, PREFIX
from .runs import RunRecord, RunRepository
from .snapshot import Snapshot
from .snapshot_store import SnapshotStore
from .storage.base import check_key

if TYPE_CHECKING:
    from .service import RunObserver, SparkJobs

__all__ = ["RestoreResult", "rerun", "restore", "pinned_args"]


@dataclass(frozen=True)
class RestoreResult:
    run_id: str
    snapshot: str
    dest: Path
    files: int


def pinned_args(record: RunRecord) -> tuple[str, ...]:
    """The record's arguments with each ``run:latest``/``run:best`` reference pinned to the run
    it resolved to then, so a rerun reads the same inputs even after newer runs."""
    pins = {item["reference"]: f"{PREFIX}{item['run']}/{item['path']}" for item in record.inputs
            if {"reference", "run", "path"} <= item.keys()}
    pinned = []
    for arg in record.args:
        for reference, pin in pins.items():
            if arg.endswith(reference) and ESCAPE not in arg:
                arg = arg[: len(arg) - len(reference)] + pin
                break
        pinned.append(arg)
    return tuple(pinned)


def rerun(service: "SparkJobs", project_dir: Path | None, run_id: str, *, config: str | None,
          args: tuple[str, ...] | None, detach: bool, observer: "RunObserver") -> RunRecord:
    """Run the stored snapshot of ``run_id`` again, with its arguments unless ``args`` is given,
    on its run configuration unless ``config`` names another one of that snapshot."""
    from .run_flow import execute_run, resolve_argv
    from .service import Rerun, RunRequest

    repo = service.repository(project_dir)
    record = repo.load(repo.resolve(run_id))
    digest = _snapshot_of(record)
    name = config or record.details.get("runconfig") or record.target
    _check_folder_name(record)
    holder_base = service.home / "cache" / "rerun"
    holder_base.mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(prefix="rerun-", dir=holder_base))
    try:
        # Named as the project, whose name is its folder's unless project.yml names it.
        root = holder / record.project
        snapshot = Snapshot(root, SnapshotStore(repo.store).restore(digest, root), digest)
        if not (root / CONFIG_DIR / f"{name}.runconfig").is_file():
            known = ", ".join(available_runconfigs(root)) or "none"
            raise ConfigError(
                f"The snapshot of run {record.id} has no run configuration '{name}' (it has: {known}); a rerun runs "
                "the snapshot as it was stored, its aml_config/ included."
            )
        if args is None:
            script, argv = record.script, pinned_args(record)
        else:
            settings = load_run_settings(root, name, service.environ)
            named = record.script if "$file" in settings.argument_vector else None
            script, argv = resolve_argv(settings, named, args)
        request = RunRequest(root, name, script, argv, detach=detach, rerun=Rerun(record.id, snapshot))
        return execute_run(service, request, observer)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def restore(repo: RunRepository, run_id: str, dest: Path, *, force: bool = False) -> RestoreResult:
    """Write the snapshot of ``run_id`` into ``dest`` as files.

    A missing or empty ``dest`` receives the snapshot whole; a non-empty one is refused unless
    ``force``, which writes the snapshot's files over the ones of the same names and leaves the
    others alone. The snapshot is first restored (and checked) in a folder beside ``dest`` and
    then moved into place, so a failure leaves ``dest`` as it was.
    """
    record = repo.load(repo.resolve(run_id))
    digest = _snapshot_of(record)
    dest = Path(os.path.abspath(Path(dest).expanduser()))
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest} is a file; restore into a folder.")
    occupied = dest.is_dir() and any(dest.iterdir())
    if occupied and not force:
        raise ConfigError(
            f"{dest} is not empty; restore into a new or empty folder, or use --force to write the snapshot's files "
            "over it (files it does not have are kept)."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.sparkjobs-restore-", dir=dest.parent))
    try:
        tree = staging / "tree"
        entries = SnapshotStore(repo.store).restore(digest, tree)
        if not occupied:
            if dest.is_dir():
                dest.rmdir()
            os.rename(tree, dest)
        else:
            paths = [e.path for e in entries]
            _check_overlay(dest, paths)
            for path in paths:
                target = dest / path
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tree / path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreResult(record.id, digest, dest, len(entries))


def _snapshot_of(record: RunRecord) -> str:
    if not record.snapshot:
        raise ConfigError(f"Run {record.id} recorded no snapshot, so it cannot be restored or rerun.")
    return record.snapshot


def _check_folder_name(record: RunRecord) -> None:
    """The project's name becomes a folder name: a record edited to say '../x' must not escape."""
    name = record.project
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(f"Run {record.id} names its project {name!r}, which is not a folder name; it cannot be rerun.")


def _check_overlay(dest: Path, paths: list[str]) -> None:
    """Refuse, before anything moves, a file where the snapshot needs a folder or the reverse."""
    for path in paths:
        check_key(path)
        target = dest / path
        blocked = next((p for p in target.parents if p != dest and dest in p.parents and p.exists() and not p.is_dir()), None)
        if blocked is not None:
            raise ConfigError(f"{blocked} is a file, where the snapshot has a folder; nothing was restored.")
        if target.is_dir() and not target.is_symlink():
            raise ConfigError(f"{target} is a folder, where the snapshot has a file; nothing was restored.")
