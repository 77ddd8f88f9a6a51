"""What each CLI command does: call the service, print the answer, pick the exit code."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from .discovery import find_project
from .errors import ConfigError
from .history import RunQuery
from .runs import RunRecord, RunStatus
from .service import Interrupt, RunObserver, RunRequest, SparkJobs
from .textsafe import terminal_safe
from .wording import count, sentence, size

__all__ = ["run", "rerun", "restore", "init", "ui", "runs_list", "runs_compare", "runs_show", "runs_attach",
           "runs_recover", "artifacts_download", "config_check", "env_build", "env_show", "quiet_stdout"]


def quiet_stdout() -> None:
    """The reader of our output went away (``| head -1``): whatever is still to be printed goes
    nowhere, quietly, instead of ending in a BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _start(args: argparse.Namespace) -> Path:
    """Where to look for the project: --project, else the current folder."""
    if args.project is None:
        return Path.cwd()
    if not args.project.exists():
        raise ConfigError(f"The project folder {args.project} does not exist.")
    if not args.project.is_dir():
        raise ConfigError(f"--project {args.project} is not a folder.")
    return args.project


def _project(args: argparse.Namespace) -> Path | None:
    """The enclosing project, found as git finds its repository, or None outside any."""
    return find_project(_start(args))


def _required_project(args: argparse.Namespace) -> Path:
    start = _start(args)
    found = find_project(start)
    if found is None:
        where = start.resolve()
        raise ConfigError(
            f"No sparkjobs project in {where} or any folder above it (none has aml_config/). "
            f"Run 'sparkjobs init' to make {where} a project, or name one with --project DIR."
        )
    return found


def _exit_code(record: RunRecord) -> int:
    return 0 if record.status is RunStatus.COMPLETED else 1 if record.status.is_terminal else 0


def _ask_kill_or_detach() -> str:
    if not sys.stdin.isatty():
        return Interrupt.KILL  # nobody to ask: never leave a job running unwatched by surprise
    try:
        answer = input("\nKill the job, or detach and leave it running? [k/d] ").strip().lower()
    except (EOFError, KeyboardInterrupt):
        return Interrupt.KILL
    return Interrupt.DETACH if answer.startswith("d") else Interrupt.KILL


def _say(text: str) -> None:
    """A line for the person watching, on stderr; if they have gone (``2>&1 | head``), the run
    goes on and still ends with its job's exit code."""
    try:
        print(text, file=sys.stderr, flush=True)
    except BrokenPipeError:
        pass


def _observer(as_json: bool, quiet: bool = False) -> RunObserver:
    from .progress import terminal_progress

    # With --json, stdout carries only the record; the job's output goes to stderr.
    out = sys.stderr if as_json else sys.stdout

    def line(text: str) -> None:
        print(text, file=out, flush=True)

    return RunObserver(
        on_line=line,
        on_event=lambda message: _say(f"sparkjobs: {message}"),
        on_notice=(lambda notice: None) if quiet else (lambda notice: _say(f"sparkjobs: {notice.line()}")),
        on_interrupt=_ask_kill_or_detach,
        progress=terminal_progress,
    )


def _print_summary(record: RunRecord) -> None:
    # Each fact once: the error, when there is one, already says how the job ended.
    headline = f"Run {record.id} {record.status.value}"
    if record.error and record.status is not RunStatus.COMPLETED:
        headline = f"{headline}. {sentence(record.error)}"
    elif record.exit_code not in (None, 0):
        headline = f"{headline} (exit code {record.exit_code})."
    else:
        headline += "."
    _say(f"sparkjobs: {headline}")
    if record.artifacts:
        from .artifact_view import group_artifacts

        entries = group_artifacts(record.artifacts)
        files = "" if len(entries) == len(record.artifacts) else f" ({count(len(record.artifacts), 'file')})"
        stored = f"{count(len(entries), 'artifact')}{files} stored"
        _say(f"sparkjobs: {stored}; see 'sparkjobs runs show {record.id}'.")


def _report(record: RunRecord, as_json: bool) -> int:
    if as_json:
        try:
            print(json.dumps(record.to_json(), indent=2), flush=True)
        except BrokenPipeError:  # the run is recorded; its exit code still says how it went
            quiet_stdout()
    else:
        _print_summary(record)
    return _exit_code(record)


def run(args: argparse.Namespace) -> int:
    service = SparkJobs()
    project = _required_project(args)
    here = Path.cwd()
    # A script path is the shell's: relative to the current folder when that is in the project.
    inside = here == project or project in here.parents
    request = RunRequest(project, args.config, args.script, tuple(args.args), detach=args.detach,
                         script_base=here if inside else None)
    if args.dry_run:
        print(json.dumps(service.describe_run(request), indent=2))
        return 0
    return _report(service.run(request, _observer(args.json, args.quiet)), args.json)


def rerun(args: argparse.Namespace) -> int:
    record = SparkJobs().rerun(_project(args), args.run_id, config=args.config, args=args.new_args, detach=args.detach,
                               observer=_observer(args.json, args.quiet))
    return _report(record, args.json)


def restore(args: argparse.Namespace) -> int:
    done = SparkJobs().restore(_project(args), args.run_id, args.output, force=args.force)
    print(f"Restored the snapshot of run {done.run_id} ({count(done.files, 'file')}, {done.snapshot[:12]}) into {done.dest}.")
    return 0


def init(args: argparse.Namespace) -> int:
    if args.from_docker:
        written = SparkJobs().convert_docker_compute(_required_project(args), args.from_docker)
        print(f"wrote {written}")
        return 0
    created = SparkJobs().init_project(args.project or Path.cwd(), force=args.force)
    for path in created:
        print(f"created {path}")
    return 0


def runs_list(args: argparse.Namespace) -> int:
    from .cli_history import list_query, print_runs  # the history commands' code loads for them alone

    project = _project(args)
    query = list_query(args)
    records = SparkJobs().list_runs(project, all_projects=args.all, query=query, progress=_indexing)
    if project is None and not args.all:  # said once the listing worked: an error is said alone
        print(f"Not inside a sparkjobs project (no aml_config/ in {_start(args).resolve()} or above): "
              "showing the runs of every project.", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    if not records:
        print("No runs match." if query != RunQuery(limit=query.limit) else "No runs yet.")
        return 0
    print_runs(records, query.sort)
    return 0


def _indexing(label: str, total: int) -> Callable[[int], None] | None:
    """A first list of a large store reads every record once: say so, since it can take minutes."""
    from .history.sync import reading_notice
    from .progress import terminal_progress

    print(reading_notice(total, "lists"), file=sys.stderr)
    return terminal_progress(label, total, unit="records")


def config_check(args: argparse.Namespace) -> int:
    from .cli_config import config_check

    return config_check(SparkJobs().check_config(_required_project(args), args.config), args.json)


def runs_compare(args: argparse.Namespace) -> int:
    from .cli_history import runs_compare

    return runs_compare(args)


def runs_show(args: argparse.Namespace) -> int:
    service = SparkJobs()
    project = _project(args)
    record = service.get_run(project, args.run_id)
    if args.json:
        data = record.to_json()
        if args.log:
            data["log_text"] = service.get_log(project, record.id)
        series = service.get_metrics(project, record.id)
        data["metric_series"] = {name: [point.to_json() for point in points] for name, points in series.items()}
        print(json.dumps(data, indent=2))
        return 0
    fields = [
        ("id", record.id), ("project", record.project), ("target", record.target),
        ("script", " ".join([record.script, *record.args])), ("status", record.status.value),
        ("exit code", "" if record.exit_code is None else str(record.exit_code)),
        ("started", record.started_at), ("ended", record.ended_at or ""), ("snapshot", record.snapshot),
    ]
    fields += [(k, v) for k, v in sorted(record.details.items())]
    if record.error:
        fields.append(("error", record.error))
    for name, value in fields:
        print(f"{name + ':':<12}{value}")
    _print_logged(record)
    if record.environment:  # the Python dependencies it ran with
        env = record.environment
        print(f"environment: {env.digest[:12]} (Python {env.python_version}, {env.platform})")
        for package in env.packages:
            print(f"  {package}")
    if record.inputs:  # lineage: where each run: argument came from
        from .run_inputs import lineage

        print("inputs:")
        for item in record.inputs:
            print(f"  {lineage(item)}  ({item.get('reference', '')})")
    _print_artifacts(record)
    if args.log:
        print("\n--- driver log ---")
        print(service.get_log(project, record.id), end="")
    return 0


def _print_logged(record: RunRecord) -> None:
    """The last value of each metric, then the params; names and text as the script gave them,
    made safe for the terminal."""
    for title, values in (("metrics", record.metrics), ("params", record.params)):
        if not values:
            continue
        print(f"{title}:")
        rows = [(terminal_safe(str(name)), terminal_safe(_shown_value(value))) for name, value in values.items()]
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"  {name:<{width}}  {value}")


def _shown_value(value: object) -> str:
    """Numbers as Python writes them (shortest round trip), text as it is, anything else as JSON."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _print_artifacts(record: RunRecord) -> None:
    """One line per artifact as people think of them: a folder Spark wrote is one line."""
    if not record.artifacts and not record.failed_artifacts:
        print("artifacts:  none")
        return
    from .artifact_view import EntryKind, group_artifacts

    print("artifacts:")
    rows = []
    for entry in group_artifacts(record.artifacts):
        if entry.kind is EntryKind.FILE:
            rows.append((entry.path, size(entry.size)))
        else:
            rows.append((entry.path, f"({entry.kind.value}, {count(entry.files, 'file')}, {size(entry.size)})"))
    rows += [(path, "NOT STORED") for path in record.failed_artifacts]
    width = max(len(path) for path, _ in rows)
    for path, what in rows:
        print(f"  {path:<{width}}  {what}")


def runs_attach(args: argparse.Namespace) -> int:
    service = SparkJobs()
    return _report(service.attach(_project(args), args.run_id, _observer(args.json)), args.json)


def runs_recover(args: argparse.Namespace) -> int:
    record = SparkJobs().recover(_project(args), args.run_id, _observer(args.json))
    return _report(record, args.json)


def artifacts_download(args: argparse.Namespace) -> int:
    from .progress import terminal_progress

    written = SparkJobs().download(_project(args), args.run_id, args.path, args.output, overwrite=args.overwrite,
                                   progress=terminal_progress)
    for path in written:
        print(path)
    return 0


def env_build(args: argparse.Namespace) -> int:
    info = SparkJobs().build_environment(_required_project(args), args.config, lambda m: _say(f"sparkjobs: {m}"))
    digest = info.environment.digest[:12]
    if info.stored_bytes:
        _say(f"sparkjobs: Environment {digest}: stored in the run store at {info.run_store} ({size(info.stored_bytes)}).")
    if info.shipped_bytes:
        _say(f"sparkjobs: Environment {digest}: uploaded to the cluster's storage ({size(info.shipped_bytes)}).")
    return _print_environment(info, args.json)


def env_show(args: argparse.Namespace) -> int:
    return _print_environment(SparkJobs().show_environment(_required_project(args), args.config), args.json)


def _print_environment(info, as_json: bool) -> int:
    data = info.to_json()
    if as_json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [("environment", data["digest"]), ("built from", data["source"]), ("python", data["python_version"]),
            ("platform", data["platform"]), ("archive", f"{data['archive']} ({size(data['archive_bytes'])})")]
    for name, value in rows:
        print(f"{name + ':':<13}{value}")
    print(f"packages:    {count(len(data['packages']), 'package')}")
    for package in data["packages"]:
        print(f"  {package['name']}=={package['version']}")
    return 0


def ui(args: argparse.Namespace) -> int:
    """Serve the run history as a web page until Ctrl-C (or SIGTERM); the page only reads."""
    import signal

    from .ui.reads import Scope
    from .ui.server import make_server, serve

    project = _project(args)
    server = make_server(Scope(SparkJobs(), project, all_projects=args.all or project is None), args.host, args.port)
    if project is None and not args.all:
        print(f"Not inside a sparkjobs project (no aml_config/ in {_start(args).resolve()} or above): "
              "showing the runs of every project.", file=sys.stderr)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        serve(server, lambda url: print(f"Serving the run history at {url} (Ctrl-C to stop)", flush=True))
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
    return 0
