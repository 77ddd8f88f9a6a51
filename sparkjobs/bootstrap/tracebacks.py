"""How a failing script's error is printed: as ``python script`` would print it."""
from __future__ import annotations

import sys
import traceback

__all__ = ["print_user_traceback"]


def print_user_traceback(exc: BaseException, script_path: str) -> None:
    """The traceback from the script's first frame down, as ``python script`` would print it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script_path:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__, file=sys.stderr)
