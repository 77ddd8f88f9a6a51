"""terminal_safe: what a remote job prints cannot drive the user's terminal."""
from __future__ import annotations

import pytest

from sparkjobs.textsafe import terminal_safe


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;pwned\x07\x1b[31mred", "red"),  # OSC window title ended by BEL, then a colour
        ("\x1b]0;pwned\x1b\\title", "title"),  # OSC ended by ST
        ("a \x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ b", "a link b"),  # OSC 8 hyperlink
        ("\x1b]0;never ended", ""),  # an unterminated OSC swallows the rest of the line
        ("\x1b[1;31mbold red\x1b[0m", "bold red"),
        ("\x1b[?1049h\x1b[2J\x1b[Hscreen", "screen"),  # alternate screen, clear, cursor home
        ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),  # DCS (sixel) string
        ("\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\x", "x"),
        ("\x1b7\x1b(Bsaved\x1b8\x1bc", "saved"),  # two-byte escapes, charset selection, reset
        ("\x9b31m8-bit\x9d0;t\x07", "8-bit"),  # C1 CSI and OSC
        ("over\rwrite\bback\x00nul\x7fdel\x85nel", "overwritebacknuldelnel"),
        ("keeps\ttabs", "keeps\ttabs"),
        ("dangling \x1b", "dangling "),
        ("unicode ✓ ü 数据", "unicode ✓ ü 数据"),
        ("", ""),
    ],
)
def test_control_sequences_are_stripped(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown


def test_plain_lines_pass_unchanged() -> None:
    line = "24/05/01 12:00:00 INFO SparkContext: Running Spark version 3.5.1 [stage 3:=====>  (2 + 1) / 4]"
    assert terminal_safe(line) == line
