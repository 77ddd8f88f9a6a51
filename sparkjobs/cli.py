"""The command line: parsing, printing and exit codes, over the service layer and nothing else.

Exit codes: 0 the job succeeded (and a bare ``sparkjobs`` or ``sparkjobs runs``, which print
their help), 1 the job failed or was killed, 2 usage, configuration, storage or connection
errors (printed as one ``Error:`` sentence, never a traceback), 141 when the reader of the
output went away (``sparkjobs runs list | head -1``), as git and coreutils do.
"""
from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import SparkJobsError
from .wording import sentence

__all__ = ["main"]

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE = 0, 1, 2
#: What a shell reports for a program ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141

_PROJECT_HELP = "the project folder, or any folder inside it (default: the current folder)"
_INVALID_CHOICE = re.compile(r"argument [A-Z_]+: invalid choice: '(?P<given>.*)' \(choose from (?P<choices>.*)\)$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors also follow the Error: form
        self.print_usage(sys.stderr)
        unknown = _INVALID_CHOICE.match(message)
        if unknown:
            choices = unknown["choices"].replace("'", "")
            message = f"'{unknown['given']}' is not a '{self.prog}' command; choose from {choices}"
        print(f"Error: {sentence(message[0].upper() + message[1:])}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _port(text: str) -> int:
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {value}")
    return value


def _group(commands: argparse._SubParsersAction, name: str, help: str, common: argparse.ArgumentParser
           ) -> argparse._SubParsersAction:
    """A command with subcommands (``runs list``); bare, it prints its own help."""
    parser = commands.add_parser(name, parents=[common], help=help, description=help[0].upper() + help[1:] + ".")
    parser.set_defaults(help_of=parser)
    subcommands = parser.add_subparsers(dest=f"{name}_command", title="commands", metavar="COMMAND", parser_class=_Parser,
                                        help=f"what to do with {help}")
    return subcommands


def _parser() -> argparse.ArgumentParser:
    # --project is accepted before the command and after it; given after, it wins.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", type=Path, default=argparse.SUPPRESS, metavar="DIR", help=_PROJECT_HELP)
    parser = _Parser(
        prog="sparkjobs",
        description="Run a project's PySpark scripts on Spark, with run history.",
        epilog="Run 'sparkjobs COMMAND --help' for a command's options. Exit codes: 0 the job succeeded, "
        "1 it failed or was stopped, 2 bad input or an unreachable service.",
    )
    parser.set_defaults(help_of=parser)
    parser.add_argument("--project", type=Path, default=None, metavar="DIR", help=_PROJECT_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND", parser_class=_Parser,
                                     help="what to do")

    run = commands.add_parser("run", parents=[common], help="run a script in a fresh snapshot of the project")
    run.add_argument("-c", "--config", required=True, metavar="NAME", help="run configuration: aml_config/NAME.runconfig")
    run.add_argument("--json", action="store_true", help="print the final run record as JSON (the job's output goes to stderr)")
    run.add_argument("--detach", action="store_true", help="submit and return at once (cluster targets)")
    run.add_argument("--dry-run", action="store_true", help="print what would be submitted, with secrets as ***")
    run.add_argument("script", nargs="?", metavar="SCRIPT",
                     help="the script, relative to the current folder (or to the project, when run from outside it)")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments for the script")

    _add_reproduce(commands, common)

    runs = _group(commands, "runs", "the run history", common)
    listing = runs.add_parser("list", parents=[common], help="list runs, newest first")
    listing.add_argument("--all", action="store_true", help="runs of every project, not just this one")
    listing.add_argument("--limit", type=_count, default=None, metavar="N",
                         help="at most N runs (default 50, or N of --last N; 0 for all)")
    listing.add_argument("--json", action="store_true", help="print the run records as a JSON list")
    listing.add_argument("--status", metavar="STATUS", help="only runs with this status: running, completed, failed, "
                         "killed or lost; several as failed,killed")
    listing.add_argument("--target", metavar="NAME", help="only runs on this compute target (aml_config/NAME.compute)")
    listing.add_argument("--script", metavar="PATH", help="only runs of this script, as recorded (relative to the project); "
                         "wildcards allowed ('notebooks/*'), and a bare name matches it in any folder")
    listing.add_argument("--last", type=_count, metavar="N", help="only the N newest runs that pass the filters; --sort orders them")
    listing.add_argument("--sort", metavar="METRIC", help="order by a logged metric, smallest first; --sort=-METRIC or --desc "
                         "for largest first; runs without it come last (param:NAME sorts by a param)")
    listing.add_argument("--desc", action="store_true", help="with --sort: largest first")
    compare = runs.add_parser("compare", parents=[common], help="2 to 10 runs side by side: config, args, params, metrics, outputs")
    compare.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="2 to 10 runs: ids, unique prefixes or random suffixes")
    compare.add_argument("--all", action="store_true",
                         help="also the config, args and params that are equal, and every output file (default: differences only)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON, each row marked 'differs'")
    show = runs.add_parser("show", parents=[common], help="one run's record and artifacts")
    show.add_argument("run_id", metavar="RUN_ID", help="the run's id, a unique prefix of it, or its random suffix")
    show.add_argument("--json", action="store_true", help="print the run record as JSON, every artifact file listed")
    show.add_argument("--log", action="store_true", help="also print the driver log")
    attach = runs.add_parser("attach", parents=[common], help="resume watching a detached cluster run")
    attach.add_argument("run_id", metavar="RUN_ID", help="the run's id, a unique prefix of it, or its random suffix")
    attach.add_argument("--json", action="store_true", help="print the final run record as JSON")
    recover = runs.add_parser("recover", parents=[common], help="settle a run whose sparkjobs process died")
    recover.add_argument("run_id", metavar="RUN_ID", help="the run's id, a unique prefix of it, or its random suffix")
    recover.add_argument("--json", action="store_true", help="print the settled run record as JSON")

    artifacts = _group(commands, "artifacts", "a run's outputs", common)
    download = artifacts.add_parser("download", parents=[common], help="download an artifact or a folder of them")
    download.add_argument("run_id", metavar="RUN_ID", help="the run's id, a unique prefix of it, or its random suffix")
    download.add_argument("path", nargs="?", default="outputs", metavar="PATH",
                          help="a file or folder, e.g. outputs/model.pkl (default: all outputs)")
    download.add_argument("-o", "--output", type=Path, default=Path("."), metavar="DIR",
                          help="where to put it: a file as DIR/NAME, a folder as DIR/FOLDER/ (default: .)")
    download.add_argument("--overwrite", action="store_true", help="replace files in DIR that have other contents")

    env = _group(commands, "env", "a run configuration's Python dependencies", common)
    for name, help in (("build", "resolve, build and store the environment ahead of a run"),
                       ("show", "the environment's digest and resolved versions")):
        command = env.add_parser(name, parents=[common], help=help)
        command.add_argument("-c", "--config", required=True, metavar="NAME",
                             help="run configuration: aml_config/NAME.runconfig")
        command.add_argument("--json", action="store_true", help="print the environment as JSON")

    ui = commands.add_parser("ui", parents=[common], help="browse the run history in a local web page")
    ui.add_argument("--port", type=_port, default=8765, metavar="N", help="the port to serve on (default 8765; 0 for any free one)")
    ui.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                    help="the address to listen on (default 127.0.0.1: this machine only; the page has no login)")
    ui.add_argument("--all", action="store_true", help="runs of every project, not just this one")

    init = commands.add_parser("init", parents=[common], help="create aml_config/ from the template")
    init.add_argument("--force", action="store_true",
                      help="overwrite existing template files, and create a project inside another")
    return parser


def _add_reproduce(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``rerun`` and ``restore``: an earlier run's stored snapshot, run again or written out."""
    rerun = commands.add_parser(
        "rerun", parents=[common], help="run an earlier run's stored snapshot again",
        usage="sparkjobs rerun [-h] [--project DIR] [-c NAME] [--json] [--detach] RUN_ID [-- ARGS ...]",
        description="Run the snapshot an earlier run stored (not the working tree), with the run's arguments, or "
        "with the new ones given after '--'.",
    )
    rerun.add_argument("run_id", metavar="RUN_ID", help="the run's id, a unique prefix of it, or its random suffix")
    rerun.add_argument("-c", "--config", metavar="NAME",
                       help="a run configuration of the stored snapshot (default: the one the run used)")
    rerun.add_argument("--json", action="store_true", help="print the final run record as JSON (the job's output goes to stderr)")
    rerun.add_argument("--detach", action="store_true", help="submit and return at once (cluster targets)")
    rerun.set_defaults(new_args=None)
    restore = commands.add_parser("restore", parents=[common], help="write an earlier run's stored snapshot out as files")
    restore.add_argument("run_id", metavar="RUN_ID", help="the run's id, a unique prefix of it, or its random suffix")
    restore.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="the folder to write it into")
    restore.add_argument("--force", action="store_true",
                         help="write into a folder that is not empty, replacing files of the same names")


def _new_arguments(argv: list[str]) -> tuple[list[str], tuple[str, ...] | None]:
    """``rerun``'s new script arguments are everything after its first '--'. They are kept from
    argparse, which drops a '--' that follows a positional argument, so ``rerun ID -- x`` and
    ``rerun ID x`` (a usage error) could not be told apart."""
    words = iter(enumerate(argv))
    for at, word in words:
        if word == "--project":
            next(words, None)
        elif not word.startswith("-"):
            if word == "rerun" and "--" in argv[at:]:
                cut = argv.index("--", at)
                return argv[:cut], tuple(argv[cut + 1 :])
            break
    return argv, None


def _sort_joined(argv: list[str]) -> list[str]:
    """``runs list --sort -accuracy`` as ``--sort=-accuracy``: argparse would take ``-accuracy``
    for an option. Only in ``runs list``: a script's own arguments are never touched."""
    words = [w for i, w in enumerate(argv) if not w.startswith("-") and (i == 0 or argv[i - 1] != "--project")]
    if words[:2] != ["runs", "list"]:
        return argv
    joined: list[str] = []
    for item in argv:
        if joined and joined[-1] == "--sort" and item.startswith("-") and item != "--":
            joined[-1] = f"--sort={item}"
        else:
            joined.append(item)
    return joined


def _interrupted(signum: int, frame: object) -> None:
    print("Interrupted.", file=sys.stderr)
    raise SystemExit(130)


def main(argv: Sequence[str] | None = None) -> int:
    # While a run is in flight, Ctrl-C, SIGTERM and SIGHUP are the run's (sparkjobs/stopping.py):
    # it stops the job and records it. Elsewhere Ctrl-C just ends the command, without a traceback.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupted)
    try:
        words, new_args = _new_arguments(list(sys.argv[1:] if argv is None else argv))
        parsed = _parser().parse_args(_sort_joined(words))
        if new_args is not None:
            parsed.new_args = new_args
        code = _dispatch(parsed)
    except BrokenPipeError:  # cut short: the rest of the output has nobody to read it
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
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
    try:
        sys.stdout.flush()  # a reader that left is noticed here, not as a traceback at exit
    except BrokenPipeError:  # everything was said; a run keeps its job's exit code
        _quiet_stdout()
    return code


def _quiet_stdout() -> None:
    from .cli_commands import quiet_stdout

    quiet_stdout()


def _dispatch(args: argparse.Namespace) -> int:
    from . import cli_commands

    name = args.command and getattr(args, f"{args.command}_command", args.command)
    if name is None:  # a bare 'sparkjobs' or 'sparkjobs runs': its help is the answer
        args.help_of.print_help()
        return EXIT_OK
    handler = getattr(cli_commands, name if name == args.command else f"{args.command}_{name}")
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
