"""Earlier runs' artifacts as a run's inputs: what each ``run:`` argument becomes, and fetching it.

Where the job finds an input depends on where it reads files from:

- on this machine (``local`` and ``spark`` targets): a local path. With a local run store it
  is the stored artifact itself (nothing is copied; a job should read it, not write it); with
  an Azure store it is downloaded into the run's work folder, ``inputs/<run>/<path>``.
- through Hadoop (``cluster`` targets): a ``wasbs://``/``abfss://`` (or ``file://``) URI in the
  target's storage. When the run store is that same storage the URI names the stored artifact;
  otherwise the artifact is copied to ``runs/<new run>/inputs/<run>/<path>`` there, the one
  storage a cluster is sure to read.

``resolve_inputs`` only looks things up, so ``--dry-run`` and a reference to a missing run
or artifact write nothing; ``stage_inputs`` fetches, and on any failure removes what it wrote.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import StorageError
from .references import Found, Reference, find, parse_argument
from .runs import RunRepository
from .storage.base import Store, safe_join, sha256_file
from .storage.uris import StorageLocation, parse_location
from .wording import count, size

__all__ = ["RunInputs", "resolve_inputs", "stage_inputs", "discard_inputs", "lineage", "INPUTS_DIR"]

INPUTS_DIR = "inputs"
#: Where a cluster job reads files (its storage, and a store to write there); None: this machine.
JobStorage = tuple[StorageLocation, Store] | None


@dataclass(frozen=True)
class _Fetch:
    key: str  # in the run store
    sha256: str
    size: int
    local: Path | None = None  # download to this file, or
    copy_to: str | None = None  # copy to this key of the job's storage


@dataclass(frozen=True)
class RunInputs:
    typed_args: tuple[str, ...]  # as given, references and escapes included: what the record keeps
    args: tuple[str, ...]  # what the job receives
    records: tuple[dict[str, str], ...] = ()  # RunRecord.inputs
    fetches: tuple[_Fetch, ...] = ()
    job_store: Store | None = None
    local_root: Path | None = None  # the work folder's inputs/, when anything is downloaded


def lineage(item: dict[str, str]) -> str:
    """One input as people say it: "model.pkl from run X" (a folder keeps its slash)."""
    path = item.get("path", "")
    name = PurePosixPath(path).name or path
    folder = "/" if item.get("resolved", "").endswith("/") else ""
    return f"{name}{folder} from run {item.get('run', '?')}"


def resolve_inputs(repo: RunRepository, project: str, args: tuple[str, ...], *, run_id: str, workdir: Path,
                   job_storage: Callable[[], JobStorage]) -> RunInputs:
    """Resolve every ``run:`` argument, looking up runs and artifacts but writing nothing.

    ``job_storage`` is asked only when an argument is a reference (opening a cluster's storage
    costs a round trip)."""
    history = parse_location(repo.store.location)
    resolved_args: list[str] = []
    records: dict[str, dict[str, str]] = {}
    fetches: dict[str, _Fetch] = {}
    storage: list[JobStorage] = []
    for arg in args:
        parsed = parse_argument(arg)
        if isinstance(parsed, str):
            resolved_args.append(parsed)
            continue
        if not storage:
            storage.append(job_storage())
        found = find(repo, project, parsed)
        resolved = _place(found, history, storage[0], run_id, workdir, fetches)
        resolved_args.append(parsed.lead + resolved)
        records.setdefault(parsed.text, {"reference": parsed.text, "run": found.run_id, "path": parsed.path, "resolved": resolved})
    job_store = storage[0][1] if storage and storage[0] is not None else None
    local_root = workdir / INPUTS_DIR if any(f.local for f in fetches.values()) else None
    return RunInputs(tuple(args), tuple(resolved_args), tuple(records.values()), tuple(fetches.values()), job_store, local_root)


def _place(found: Found, history: StorageLocation, storage: JobStorage, run_id: str, workdir: Path,
           fetches: dict[str, _Fetch]) -> str:
    """Where the job finds what ``found`` names; records what must be fetched for it."""
    ref: Reference = found.reference
    stored = f"runs/{found.run_id}/{ref.path}"
    inside = f"{INPUTS_DIR}/{found.run_id}/{ref.path}"
    end = "/" if found.folder else ""
    if storage is None:
        if history.is_local:
            return history.key(stored) + end
        for a in found.artifacts:
            local = safe_join(workdir, f"{INPUTS_DIR}/{found.run_id}/{a.path}")
            fetches[str(local)] = _Fetch(f"runs/{found.run_id}/{a.path}", a.sha256, a.size, local=local)
        return str(safe_join(workdir, inside)) + end
    where, _ = storage
    if _same_place(history, where):
        return where.uri(stored, folder=found.folder)
    for a in found.artifacts:
        dest = f"runs/{run_id}/{INPUTS_DIR}/{found.run_id}/{a.path}"
        fetches[dest] = _Fetch(f"runs/{found.run_id}/{a.path}", a.sha256, a.size, copy_to=dest)
    return where.uri(f"runs/{run_id}/{inside}", folder=found.folder)


def _same_place(a: StorageLocation, b: StorageLocation) -> bool:
    """The same folder or container and prefix, whichever Hadoop scheme names it."""
    return (a.is_local, a.account, a.container, a.prefix, a.endpoint_suffix) == (
        b.is_local, b.account, b.container, b.prefix, b.endpoint_suffix)


def stage_inputs(history: Store, inputs: RunInputs, on_event: Callable[[str], None]) -> None:
    """Fetch every input the job cannot read where it is stored, each checked against the
    SHA-256 its run recorded. On any failure (Ctrl-C included), what was written is removed."""
    if not inputs.fetches:
        return
    try:
        with tempfile.TemporaryDirectory(prefix="sparkjobs-inputs-") as scratch:
            with ThreadPoolExecutor(max_workers=min(history.max_workers, len(inputs.fetches))) as pool:
                list(pool.map(lambda f: _fetch(history, inputs.job_store, f, Path(scratch)), inputs.fetches))
    except BaseException:
        discard_inputs(inputs)
        raise
    total = sum(f.size for f in inputs.fetches)
    verb = "Downloaded" if inputs.local_root else "Copied"
    on_event(f"{verb} {count(len(inputs.fetches), 'input file')} ({size(total)}) from earlier runs.")


def _fetch(history: Store, job_store: Store | None, fetch: _Fetch, scratch: Path) -> None:
    target = fetch.local or scratch / hashlib.sha256(fetch.key.encode()).hexdigest()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        history.get_file(fetch.key, target)
    except FileNotFoundError:
        raise StorageError(
            f"{fetch.key} is listed in its run's record, but the run store at {history.location} no longer has it; "
            "nothing was submitted."
        ) from None
    if sha256_file(target) != fetch.sha256:
        raise StorageError(f"{fetch.key} in the run store at {history.location} does not match the SHA-256 its run recorded.")
    if fetch.copy_to is not None and job_store is not None:
        job_store.put_file(fetch.copy_to, target)


def discard_inputs(inputs: RunInputs | None) -> None:
    """Remove what ``stage_inputs`` wrote (the run never started): best effort, every part tried."""
    if inputs is None:
        return
    if inputs.local_root is not None:
        shutil.rmtree(inputs.local_root, ignore_errors=True)
        try:
            inputs.local_root.parent.rmdir()  # the work folder, if nothing else is in it yet
        except OSError:
            pass
    for fetch in inputs.fetches:
        if fetch.copy_to is not None and inputs.job_store is not None:
            try:
                inputs.job_store.delete(fetch.copy_to)
            except (OSError, StorageError):
                pass
