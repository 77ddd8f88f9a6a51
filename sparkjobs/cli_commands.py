"""What each CLI command does: call the service, print the answer, pick the exit code."""
from __future__ import annotations

import argparse
import json
import sys

from .progress import terminal_progress
from .runs import RunRecord, RunStatus
from .service import Interrupt, RunObserver, RunRequest, SparkJobs

__all__ = ["run", "init", "runs_list", "runs_show", "runs_attach", "runs_recover", "artifacts_download"]


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


def _observer(as_json: bool) -> RunObserver:
    # With --json, stdout carries only the record; the job's output goes to stderr.
    out = sys.stderr if as_json else sys.stdout

    def line(text: str) -> None:
        print(text, file=out, flush=True)

    return RunObserver(
        on_line=line,
        on_event=lambda message: print(f"sparkjobs: {message}", file=sys.stderr, flush=True),
        on_interrupt=_ask_kill_or_detach,
        progress=terminal_progress,
    )


def _print_summary(record: RunRecord) -> None:
    print(f"sparkjobs: run {record.id} {record.status.value}" + (f" (exit code {record.exit_code})" if record.exit_code not in (None, 0) else "") + ".", file=sys.stderr)
    if record.artifacts:
        print(f"sparkjobs: {len(record.artifacts)} artifacts stored; see 'sparkjobs runs show {record.id}'.", file=sys.stderr)
    if record.error and record.status is not RunStatus.COMPLETED:
        print(f"sparkjobs: {record.error}", file=sys.stderr)


def _report(record: RunRecord, as_json: bool) -> int:
    if as_json:
        print(json.dumps(record.to_json(), indent=2))
    else:
        _print_summary(record)
    return _exit_code(record)


def run(args: argparse.Namespace) -> int:
    service = SparkJobs()
    request = RunRequest(args.project, args.config, args.script, tuple(args.args), detach=args.detach)
    if args.dry_run:
        print(json.dumps(service.describe_run(request), indent=2))
        return 0
    return _report(service.run(request, _observer(args.json)), args.json)


def init(args: argparse.Namespace) -> int:
    created = SparkJobs().init_project(args.project, force=args.force)
    for path in created:
        print(f"created {path}")
    return 0


def runs_list(args: argparse.Namespace) -> int:
    records = SparkJobs().list_runs(args.project, all_projects=args.all, limit=args.limit or None)
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    if not records:
        print("No runs yet.")
        return 0
    rows = [("RUN ID", "PROJECT", "TARGET", "STATUS", "STARTED", "SCRIPT")]
    for r in records:
        rows.append((r.id, r.project, r.target, r.status.value, r.started_at[:19].replace("T", " "), " ".join([r.script, *r.args])))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
    return 0


def runs_show(args: argparse.Namespace) -> int:
    service = SparkJobs()
    record = service.get_run(args.project, args.run_id)
    if args.json:
        data = record.to_json()
        if args.log:
            data["log_text"] = service.get_log(args.project, record.id)
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
    print("artifacts:" if record.artifacts else "artifacts:  none")
    for artifact in record.artifacts:
        print(f"  {artifact.path}  {artifact.size} bytes  sha256:{artifact.sha256[:16]}")
    for path in record.failed_artifacts:
        print(f"  {path}  NOT STORED")
    if args.log:
        print("\n--- driver log ---")
        print(service.get_log(args.project, record.id), end="")
    return 0


def runs_attach(args: argparse.Namespace) -> int:
    service = SparkJobs()
    return _report(service.attach(args.project, args.run_id, _observer(args.json)), args.json)


def runs_recover(args: argparse.Namespace) -> int:
    record = SparkJobs().recover(args.project, args.run_id, _observer(args.json))
    return _report(record, args.json)


def artifacts_download(args: argparse.Namespace) -> int:
    service = SparkJobs()
    record = service.get_run(args.project, args.run_id)
    total = sum(a.size for a in record.artifacts)
    written = service.download(args.project, record.id, args.path, args.output, progress=terminal_progress("download", total))
    for path in written:
        print(path)
    return 0
