"""The one API that the CLI and the web page use: run, list, show, download, init.

Run logic lives here once; what differs between a local folder and an Azure container is the
Store behind RunRepository, and what differs between local Spark and a cluster is the Target.
"""
from __future__ import annotations

import enum
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from .errors import ConfigError, RunNotFound, StorageError, UnsafePathError
from .history import RunQuery
from .runs import Artifact, RunRecord, RunRepository, match_run_id
from .wording import count
from .discovery import enclosing_project
from .storage.base import ProgressFactory, Store, safe_join, sha256_file
from .storage.local import LocalStore

if TYPE_CHECKING:  # and imported where used: `runs list` loads neither YAML nor the run path
    from .config import ConfigNotice, ProjectSettings, RunSettings
    from .history import RunComparison, RunPage
    from .metrics import MetricPoint
    from .snapshot import Snapshot
    from .reproduce import RestoreResult
    from .environments.ops import EnvironmentInfo
    from .targets.base import SubmitPlan

__all__ = ["SparkJobs", "RunRequest", "RunObserver", "Interrupt", "Rerun"]
log = logging.getLogger(__name__)

class Interrupt(str, enum.Enum):
    """What to do with a running job when the user presses Ctrl-C."""

    KILL = "kill"
    DETACH = "detach"


@dataclass
class RunObserver:
    """How the shell around the service hears about a run. Every hook is optional."""

    on_line: Callable[[str], None] = lambda line: None
    on_event: Callable[[str], None] = lambda message: None
    #: Once per run, each configuration key accepted but ignored (ConfigNotice).
    on_notice: Callable[["ConfigNotice"], None] = lambda notice: None
    on_interrupt: Callable[[], str] = lambda: Interrupt.KILL
    progress: ProgressFactory = lambda label, total: None


@dataclass(frozen=True)
class Rerun:
    """A rerun: the stored snapshot of run ``of``, restored at the request's project_dir. The
    request's script and args are then the whole command line (ArgumentVector applied)."""

    of: str
    snapshot: Snapshot


@dataclass(frozen=True)
class RunRequest:
    project_dir: Path
    config: str
    script: str | None
    args: tuple[str, ...] = ()
    detach: bool = False
    #: The folder a relative script path starts from (the shell's current folder when it is
    #: inside the project); None means the project folder.
    script_base: Path | None = None
    rerun: Rerun | None = None


class SparkJobs:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.home = Path(self.environ.get("SPARKJOBS_HOME") or "~/.sparkjobs").expanduser().absolute()

    # ---- stores ----------------------------------------------------------------------------
    def history_store(self, project: ProjectSettings | None = None) -> Store:
        location = (project.history if project else None) or self.environ.get("SPARKJOBS_HISTORY")
        if not location:
            return LocalStore(self.home)
        from .storage.registry import open_store  # lazy: the Azure SDK is an optional extra
        from .credentials import resolve_storage_credentials

        project_dir = project.root if project else None
        return open_store(location, resolve_storage_credentials(location, self.environ, project_dir))

    def repository(self, project_dir: Path | None) -> RunRepository:
        project = self._project_or_none(project_dir)
        return RunRepository(self.history_store(project))

    def _project_or_none(self, project_dir: Path | None) -> ProjectSettings | None:
        if project_dir is None or not (Path(project_dir) / "aml_config").is_dir():
            return None
        from .project_config import load_project  # not config: `runs list` loads no run configuration code

        return load_project(project_dir, self.environ)

    # ---- queries ---------------------------------------------------------------------------
    def list_runs(self, project_dir: Path | None, *, all_projects: bool = False, limit: int | None = None,
                  query: RunQuery | None = None,
                  progress: ProgressFactory | None = None) -> list[RunRecord]:
        """The runs of the project (or every project), newest first; ``query`` filters and sorts."""
        return list(self.query_runs(project_dir, query or RunQuery(limit=limit), all_projects=all_projects,
                                    progress=progress).runs)

    def query_runs(self, project_dir: Path | None, query: RunQuery, *, all_projects: bool = False,
                   progress: ProgressFactory | None = None) -> RunPage:
        """One page of runs from the local index, brought up to date with the store first
        (sparkjobs/history/sync.py says what that reads; ``progress`` hears of a long first
        build). Unreadable records are left out with one warning each."""
        import sqlite3  # the index's modules load here, not on a run's start-up (history/__init__.py)

        from .history import RunIndex, sync_index

        project = self._project_or_none(project_dir)
        repo = RunRepository(self.history_store(project))
        index = RunIndex(self.index_path(repo.store), repo.store.location)
        name = None if all_projects or project is None else project.name
        try:
            sync_index(index, repo, progress=progress)
            page = index.query(query, name)
        except sqlite3.DatabaseError:  # a damaged cache: build it again from the store
            index.reset()
            sync_index(index, repo, progress=progress)
            page = index.query(query, name)
        for problem in page.broken:
            log.warning("Warning: %s It is left out.", problem)
        return page

    def index_path(self, store: Store) -> Path:
        """Where the index of that store lives: a cache in sparkjobs' home, never in the project."""
        from .history import index_path

        return index_path(self.home, store.location)

    def compare(self, project_dir: Path | None, run_ids: Sequence[str]) -> RunComparison:
        """2 to 10 runs side by side; ids may be shortened as everywhere."""
        from .history import compare_runs
        from .history.compare import check_count

        check_count(len(run_ids))
        repo = self.repository(project_dir)
        return compare_runs([repo.load(self._resolve(repo, run_id)).as_seen_now() for run_id in run_ids])

    def _resolve(self, repo: RunRepository, run_id: str) -> str:
        """A whole id is looked up; a shortened one is matched against the index (kept current),
        not a listing of every blob in the store."""
        try:
            whole = repo.store.exists(repo.record_key(run_id))
        except (RunNotFound, UnsafePathError):
            whole = True  # not an id at all: resolve says so
        if whole:
            return repo.resolve(run_id)
        from .history import RunIndex, sync_index

        index = RunIndex(self.index_path(repo.store), repo.store.location)
        sync_index(index, repo)
        return match_run_id(index.ids(), run_id, repo.store.location)

    def get_run(self, project_dir: Path | None, run_id: str) -> RunRecord:
        repo = self.repository(project_dir)
        return repo.load(repo.resolve(run_id)).as_seen_now()

    def get_log(self, project_dir: Path | None, run_id: str) -> str:
        repo = self.repository(project_dir)
        record = repo.load(repo.resolve(run_id))
        if not record.log:
            return ""
        try:
            return repo.store.get_bytes(record.log).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def get_metrics(self, project_dir: Path | None, run_id: str) -> dict[str, list[MetricPoint]]:
        """Every point of every metric the run logged, by name in the order first logged; the
        record's ``metrics`` holds only each one's last value."""
        repo = self.repository(project_dir)
        from .metrics import load_series

        return load_series(repo, repo.resolve(run_id))

    def download(
        self,
        project_dir: Path | None,
        run_id: str,
        path: str,
        dest: Path,
        *,
        overwrite: bool = False,
        progress: ProgressFactory | None = None,
    ) -> list[Path]:
        """Download one artifact, or a folder of them, into dest, as ``cp -r`` copies: a file
        lands as ``dest/NAME``, a folder as ``dest/FOLDER/...``, and the whole outputs folder
        (``outputs``, the default) as its contents. Returns the files written.

        A file already in dest with the artifact's contents (same SHA-256) is left alone; one
        with other contents is refused, naming it, unless ``overwrite``. Every destination is
        checked before anything is written, and nothing may land outside dest.
        """
        repo = self.repository(project_dir)
        record = repo.load(repo.resolve(run_id))
        wanted = path.strip("/")
        if wanted and wanted != "outputs" and not wanted.startswith("outputs/"):
            wanted = f"outputs/{wanted}"
        wanted = wanted or "outputs"
        parts = PurePosixPath(wanted).parts
        if ".." in parts or PurePosixPath(wanted).is_absolute():
            raise UnsafePathError(f"Artifact path {path!r} may not contain '..'.")
        matches = [a for a in record.artifacts if a.path == wanted or a.path.startswith(wanted + "/")]
        if not matches:
            raise ConfigError(f"Run {record.id} has no artifact {path!r}; see 'sparkjobs runs show {record.id}'.")
        base = "outputs" if wanted == "outputs" else str(PurePosixPath(wanted).parent)
        plan = [(a, safe_join(Path(dest), a.path[len(base) + 1 :])) for a in matches]  # refuses escapes
        plan = _files_to_write(plan, Path(dest), overwrite)
        advance = progress("download", sum(a.size for a, _ in plan)) if progress and plan else None
        written: list[Path] = []
        for artifact, target in plan:
            try:
                _get_atomically(repo.store, f"{repo.run_prefix(record.id)}/{artifact.path}", target)
            except FileNotFoundError:
                raise StorageError(
                    f"Run {record.id} lists {artifact.path}, but the run store at {repo.store.location} no longer "
                    f"has it; {count(len(written), 'file')} of {len(plan)} had been downloaded to {dest}."
                ) from None
            if advance:
                advance(artifact.size)
            written.append(target)
        return written

    # ---- init ------------------------------------------------------------------------------
    def init_project(self, project_dir: Path, *, force: bool = False) -> list[Path]:
        """Create ``aml_config/`` in project_dir from the template.

        A folder inside another project is refused unless ``force``: commands run there
        already find the outer project, and a nested one would be in the outer one's
        snapshots too. Existing template files are refused unless ``force`` as well.
        """
        folder = Path(project_dir).expanduser().absolute()
        outer = enclosing_project(folder)
        if outer is not None and not force:
            raise ConfigError(
                f"{folder} is inside the project {outer}, which sparkjobs commands run there already use. "
                "To create a separate project nested in it anyway, use --force."
            )
        from .spark_env import resource_dir

        template = resource_dir("aml_config")
        dest = folder / "aml_config"
        created = []
        files = [p for p in sorted(template.iterdir()) if p.is_file()]
        clashes = [dest / p.name for p in files if (dest / p.name).exists()]
        if clashes and not force:
            names = ", ".join(str(c) for c in clashes)
            verb, them = ("exists", "it") if len(clashes) == 1 else ("exist", "them")
            raise ConfigError(f"{names} already {verb}; use --force to overwrite {them}.")
        dest.mkdir(parents=True, exist_ok=True)
        for source in files:
            shutil.copyfile(source, dest / source.name)
            created.append(dest / source.name)
        return created

    def convert_docker_compute(self, project_dir: Path, name: str) -> Path:
        """Replace Workbench's Docker target aml_config/NAME.compute with the local (or spark)
        target that runs the same job; returns the file written."""
        from .workbench_docker import write_docker_equivalent

        return write_docker_equivalent(Path(project_dir) / "aml_config", name)

    # ---- run -------------------------------------------------------------------------------
    def run(self, request: RunRequest, observer: RunObserver | None = None) -> RunRecord:
        from .run_flow import execute_run  # kept apart so this module stays a readable index

        return execute_run(self, request, observer or RunObserver())

    def describe_run(self, request: RunRequest) -> dict:
        """What ``run`` would do, for --dry-run: nothing is submitted or recorded; secrets are ***."""
        from .run_flow import prepare

        repo, plan, target = prepare(self, request, RunObserver(), dry_run=True)
        return {
            "run_id": plan.run_id,
            "project": plan.settings.project.name,
            "target": {"name": plan.settings.compute.name, "type": plan.settings.compute.type.value},
            "run_store": repo.store.location,
            "snapshot": {"digest": plan.snapshot.digest, "files": len(plan.snapshot.entries), "bytes": plan.snapshot.total_size},
            "script": plan.script,
            "args": list(plan.args),
            "inputs": list(plan.inputs.records) if plan.inputs else [],
            "environment": _described_environment(plan),
            "env": dict(plan.env),
            "spark_conf": dict(plan.spark_conf),
            "notices": [notice.to_json() for notice in plan.settings.ignored],
            "hadoop_secrets": {key: "***" for key in plan.hadoop_secrets},
            "submit": target.describe(plan),
        }

    def check_config(self, project_dir: Path, name: str) -> RunSettings:
        """What run configuration ``name`` resolves to, every key's notice included; nothing
        runs. Raises ConfigError as a run would."""
        from .config import load_run_settings

        return load_run_settings(project_dir, name, self.environ)

    # ---- reproduce (issue 10) ---------------------------------------------------------------
    def rerun(self, project_dir: Path | None, run_id: str, *, config: str | None = None,
              args: tuple[str, ...] | None = None, detach: bool = False,
              observer: RunObserver | None = None) -> RunRecord:
        """Run the stored snapshot of a run again (not the working tree), on its run
        configuration unless ``config`` names another of that snapshot, with its arguments
        (run:latest and run:best pinned to the runs they named) unless ``args`` is given.
        The new record's ``details["rerun_of"]`` names the run."""
        from .reproduce import rerun

        return rerun(self, project_dir, run_id, config=config, args=args, detach=detach, observer=observer or RunObserver())

    def restore(self, project_dir: Path | None, run_id: str, dest: Path, *, force: bool = False) -> "RestoreResult":
        """Write a run's snapshot into dest as files; a non-empty dest is refused unless
        ``force`` (then the snapshot's files replace those of the same names)."""
        from .reproduce import restore

        return restore(self.repository(project_dir), run_id, dest, force=force)

    def attach(self, project_dir: Path | None, run_id: str, observer: RunObserver | None = None) -> RunRecord:
        """Resume watching a detached or interrupted run on a target that supports it."""
        from .run_flow import reattach

        return reattach(self, project_dir, run_id, observer or RunObserver())

    # ---- environments (issue 12) ------------------------------------------------------------
    def build_environment(self, project_dir: Path, config: str, say: Callable[[str], None] | None = None
                          ) -> "EnvironmentInfo":
        """Build run configuration ``config``'s Python environment ahead of a run and store it."""
        from .environments.ops import build

        return build(self, project_dir, config, say or (lambda message: None))

    def show_environment(self, project_dir: Path, config: str) -> "EnvironmentInfo":
        """The environment a run of ``config`` would use; nothing is built."""
        from .environments.ops import show

        return show(self, project_dir, config)

    def recover(self, project_dir: Path | None, run_id: str, observer: RunObserver | None = None) -> RunRecord:
        """Settle a lost run (its sparkjobs process died) or store a record that could not be
        stored when its run ended."""
        from .run_flow import recover

        return recover(self, project_dir, run_id, observer or RunObserver())


def _described_environment(plan: "SubmitPlan") -> dict | None:
    built = plan.environment
    if built is None:
        return None
    return {"digest": built.digest, "python_version": built.python_version, "platform": built.platform,
            "packages": [f"{p.name}=={p.version}" for p in built.packages], "archive": str(built.archive)}


def _files_to_write(plan: list[tuple[Artifact, Path]], dest: Path, overwrite: bool) -> list[tuple[Artifact, Path]]:
    """What a download must write: files already there with the same contents are skipped;
    anything else in the way is refused, before a single file is written."""
    todo, clashes = [], []
    for artifact, target in plan:
        blocked = next((folder for folder in target.parents if folder.is_file()), None)
        if blocked is not None:
            raise ConfigError(f"{blocked} is a file, where {artifact.path} needs a folder; nothing was downloaded.")
        if target.is_dir():
            raise ConfigError(f"{target} is a folder, where {artifact.path} needs to be a file; nothing was downloaded.")
        if target.is_file() and sha256_file(target) == artifact.sha256:
            continue
        if target.exists() and not overwrite:
            clashes.append(target)
        todo.append((artifact, target))
    if len(clashes) == 1:
        raise ConfigError(f"{clashes[0]} already exists with other contents; nothing was downloaded. Use --overwrite to replace it.")
    if clashes:
        shown = ", ".join(str(c) for c in clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise ConfigError(
            f"{len(clashes)} files already exist in {dest} with other contents ({shown}); nothing was downloaded. "
            "Use --overwrite to replace them."
        )
    return todo


def _get_atomically(store: Store, key: str, target: Path) -> None:
    """Download beside the target, then rename: an interrupted download never leaves half a
    file, nor destroys the file it was replacing."""
    partial = target.with_name(f".{target.name}.sparkjobs-partial")
    try:
        store.get_file(key, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
