"""Running the user's script as ``__main__``, as ``python script`` would."""
from __future__ import annotations

import os
import runpy
import sys
from typing import Any

from .console import flush_stdio, say
from .spec import EXIT_BOOTSTRAP
from .tracebacks import print_user_traceback

__all__ = ["exit_code", "run_script"]


def _set_sys_path(root: str, script_path: str) -> None:
    """Imports resolve as for ``python script`` run in the project root.

    The script's folder comes first (as Python does it), then the snapshot root, so the
    project's own modules import from either. (``driver.py`` has already taken its own folder
    off the path, so nothing of the bootstrap can shadow a user module.)
    """
    entries = list(sys.path)
    first = [os.path.dirname(script_path)]
    if root not in first:
        first.append(root)
    sys.path[:] = first + [entry for entry in entries if entry not in first]


def run_script(script: str, args: tuple[str, ...], root: str) -> int:
    """Run the script as ``__main__`` and turn how it ended into an exit code."""
    path = os.path.join(root, *script.split("/"))
    if not os.path.isfile(path):
        say(f"the script {script} is not in the snapshot at {root}.")
        return EXIT_BOOTSTRAP
    sys.argv = [script, *args]
    _set_sys_path(root, path)
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        return exit_code(exc.code)
    except BaseException as exc:  # noqa: BLE001 - any failure (even KeyboardInterrupt) is the run's result; outputs must still ship
        print_user_traceback(exc, path)
        return 1
    finally:
        flush_stdio()
    return 0


def exit_code(code: Any) -> int:
    """What ``sys.exit(code)`` would make of ``code``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
