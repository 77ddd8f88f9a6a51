"""Ring-buffer-safe log following.

Livy keeps only the last ``livy.cache-log.size`` (200) lines of each stream, and its log
view is ``["stdout: ", out..., "\\nstderr: ", err..., "\\nYARN Diagnostics: ", diag...]``.
The ``from``/``total`` of ``GET /log`` index that view, so once a stream passes 200 lines
the same offset names different lines from one poll to the next: offset tailing repeats or
skips lines, and no counter tells how many lines scrolled away.

So the follower fetches the whole view each time and, per stream, aligns the new snapshot
against the previous one by content: the longest suffix of the old snapshot that is a
prefix of the new one is what both have; the rest of the new one is new.  If nothing
overlaps although both are non-empty, output outran the buffer between two polls and a
visible gap marker is emitted.  Between whole fetches, the last 10 lines that come with
every Batch are used the same way where they overlap what was seen.  Lines are never
emitted twice; the price is that output
made of repeating identical lines can be under-reported (the longest overlap wins).
"""

from __future__ import annotations

from dataclasses import dataclass

from livy.models import STREAM_HEADERS, LogPage

__all__ = ["LogLine", "LogFollower", "overlap"]

LIVY_LOG_LINES = 200
#: What a snapshot grown from tail windows may hold; more than any buffer Livy keeps.
KEEP_LINES = 10_000


@dataclass(frozen=True)
class LogLine:
    """One new line of a stream (``stdout``, ``stderr``, ``yarn`` or ``log``).

    ``gap`` marks the ``[... lines skipped ...]`` marker rather than real output.
    """

    stream: str
    text: str
    gap: bool = False

    def __str__(self) -> str:
        return self.text


def overlap(before: tuple[str, ...], after: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``before`` that is a prefix of ``after``."""
    if len(after) >= len(before) and after[: len(before)] == before:
        return len(before)
    for size in range(min(len(before), len(after)), 0, -1):
        if before[-size] == after[0] and before[-size:] == after[:size]:
            return size
    return 0


class LogFollower:
    """Turns successive whole log views of one batch into new lines, each exactly once."""

    def __init__(self, buffer_lines: int = LIVY_LOG_LINES) -> None:
        self.buffer_lines = buffer_lines
        self._last: dict[str, tuple[str, ...]] = {}

    def feed(self, page: LogPage) -> list[LogLine]:
        """New lines in ``page``, which must be the whole view (``size=-1``)."""
        out: list[LogLine] = []
        for stream, lines in page.streams().items():
            out.extend(self._update(stream, lines))
        return out

    def feed_tail(self, window: tuple[str, ...]) -> list[LogLine]:
        """New lines provable from the last lines of the view (a Batch's ``log`` field).

        Sections whose header is in the window are whole and handled as in :meth:`feed`.
        The run before the first header is only the end of its stream: its new lines are
        emitted only if it overlaps what was already seen, so nothing in between is missed.
        """
        first = next((i for i, line in enumerate(window) if line in STREAM_HEADERS), None)
        if first is None:
            return []  # inside the diagnostics, or a layout without headers: wait for feed()
        out: list[LogLine] = []
        order = list(STREAM_HEADERS.values())
        position = order.index(STREAM_HEADERS[window[first]])
        if first > 0 and position > 0:
            stream, part = order[position - 1], window[:first]
            before = self._last.get(stream, ())
            shared = overlap(before, part)
            if shared:
                new = part[shared:]
                self._last[stream] = (before + new)[-KEEP_LINES:]
                out.extend(LogLine(stream, text) for text in new)
        page = LogPage(id=0, offset=0, total=len(window) - first, lines=window[first:])
        for stream, lines in page.streams().items():
            out.extend(self._update(stream, lines))
        return out

    def covers(self, window: tuple[str, ...]) -> bool:
        """Whether every line of ``window`` (a Batch's last lines, after :meth:`feed_tail`)
        is known: if not, output arrived that only the whole log can show."""
        first = next((i for i, line in enumerate(window) if line in STREAM_HEADERS), None)
        if first is None:
            return False
        position = list(STREAM_HEADERS).index(window[first])
        if first > 0 and position > 0:
            stream, part = list(STREAM_HEADERS.values())[position - 1], window[:first]
            if self._last.get(stream, ())[-len(part):] != part:
                return False
        return True  # a section whose header is in the window was taken whole

    def _update(self, stream: str, lines: tuple[str, ...]) -> list[LogLine]:
        before = self._last.get(stream, ())
        self._last[stream] = lines
        if lines == before:
            return []
        out: list[LogLine] = []
        shared = overlap(before, lines)
        if stream == "yarn":  # replaced wholesale by Livy, not a ring buffer
            shared = shared if shared == len(before) else 0
        elif shared == 0 and (before or len(lines) >= self.buffer_lines):
            out.append(LogLine(stream, self._marker(stream, first=not before), gap=True))
        out.extend(LogLine(stream, text) for text in lines[shared:])
        return out

    def _marker(self, stream: str, *, first: bool) -> str:
        n = self.buffer_lines
        if first:
            return f"[... earlier {stream} lines skipped: Livy keeps only the last {n} ...]"
        return (
            f"[... {stream} lines skipped: at least {n} new lines since the last poll and "
            f"Livy keeps only the last {n}; poll more often ...]"
        )
