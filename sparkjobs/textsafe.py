"""Text from elsewhere made safe to print on a terminal.

A Livy log, a driver log read back from storage or a server's error message is written by
someone else, and a terminal obeys the control sequences in it: an OSC can retitle the
window or plant a hyperlink, a CSI can recolour, move the cursor or clear the screen, and a
bare carriage return can overwrite what was printed before. Everything remote passes
through :func:`terminal_safe` before it is printed or recorded; only tab survives.
"""
from __future__ import annotations

import re

__all__ = ["terminal_safe"]

_CONTROL = re.compile(
    r"""
      \x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|$)   # OSC ... ended by BEL or ST (or the line)
    | \x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c|$)        # DCS, SOS, PM, APC ... ST
    | \x1b\[[0-?]*[ -/]*[@-~]                         # CSI: parameters, intermediates, final
    | \x1b[ -/]*[0-~]                                 # other escapes: ESC 7, ESC c, charsets
    | \x9d[^\x07\x9c]*(?:\x07|\x9c|$)                 # 8-bit OSC
    | \x9b[0-?]*[ -/]*[@-~]                           # 8-bit CSI
    | [\x00-\x08\x0a-\x1f\x7f-\x9f]                   # any other C0 but tab, DEL, and C1
    """,
    re.VERBOSE,
)


def terminal_safe(text: str) -> str:
    """``text`` without terminal control sequences or control characters (tab is kept)."""
    return _CONTROL.sub("", text)
