"""The command line: parsing, printing and exit codes, over the service layer and nothing else.

Exit codes: 0 the job succeeded, 1 the job failed or was killed, 2 usage, configuration,
storage or connection errors (printed as one ``Error:`` sentence, never a traceback).
"""
from __future__ import annotations

import argparse
import signal
import threading
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import SparkJobsError

__all__ = ["main"]

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors also follow the Error: form
        self.print_usage(sys.stderr)
        print(f"Error: {message[0].upper() + message[1:]}.", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", type=Path, default=Path.cwd(), help="project folder (default: the current folder)")
    parser = _Parser(prog="sparkjobs", description="Run a project's PySpark scripts on Spark, with run history.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", parents=[common], help="run a script in a fresh snapshot of the project")
    run.add_argument("-c", "--config", required=True, help="run configuration: aml_config/NAME.runconfig")
    run.add_argument("--json", action="store_true", help="print the final run record as JSON")
    run.add_argument("--detach", action="store_true", help="submit and return at once (cluster targets)")
    run.add_argument("--dry-run", action="store_true", help="print what would be submitted, with secrets as ***")
    run.add_argument("script", nargs="?", help="the script, relative to the project")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")

    runs = commands.add_parser("runs", help="the run history").add_subparsers(dest="runs_command", required=True, parser_class=_Parser)
    listing = runs.add_parser("list", parents=[common], help="list runs, newest first")
    listing.add_argument("--all", action="store_true", help="runs of every project, not just this one")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0 for all)")
    listing.add_argument("--json", action="store_true")
    show = runs.add_parser("show", parents=[common], help="one run's record")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    show.add_argument("--log", action="store_true", help="also print the driver log")
    attach = runs.add_parser("attach", parents=[common], help="resume watching a detached cluster run")
    attach.add_argument("run_id")
    attach.add_argument("--json", action="store_true")
    recover = runs.add_parser("recover", parents=[common], help="settle a run whose sparkjobs process died")
    recover.add_argument("run_id")
    recover.add_argument("--json", action="store_true", help="print the settled run record as JSON")

    artifacts = commands.add_parser("artifacts", help="a run's outputs").add_subparsers(dest="artifacts_command", required=True, parser_class=_Parser)
    download = artifacts.add_parser("download", parents=[common], help="download an artifact or a folder of them")
    download.add_argument("run_id")
    download.add_argument("path", nargs="?", default="outputs", help="e.g. outputs/model.pkl (default: all outputs)")
    download.add_argument("-o", "--output", type=Path, default=Path("."), help="destination folder (default: .)")

    init = commands.add_parser("init", parents=[common], help="create aml_config/ in the project from the template")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    return parser


def _interrupted(signum: int, frame: object) -> None:
    print("Interrupted.", file=sys.stderr)
    raise SystemExit(130)


def main(argv: Sequence[str] | None = None) -> int:
    # While a run is in flight, Ctrl-C, SIGTERM and SIGHUP are the run's (sparkjobs/stopping.py):
    # it stops the job and records it. Elsewhere Ctrl-C just ends the command, without a traceback.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupted)
    try:
        return _dispatch(_parser().parse_args(argv))
    except SparkJobsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the machine's answer (a full disk, a missing folder), as a sentence
        where = f": {exc.filename}" if exc.filename else ""
        print(f"Error: {exc.strerror or exc}{where}.", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from . import cli_commands

    handler = {
        "run": cli_commands.run,
        "init": cli_commands.init,
    }.get(args.command) or getattr(cli_commands, f"{args.command}_{getattr(args, args.command + '_command')}")
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
