"""Ignore rules for snapshots: ``.amlignore`` (else ``.gitignore``) in gitignore syntax, plus
exclusions no ``!pattern`` can undo, with limits that keep matching fast.

pathspec turns each pattern into a Python regular expression, and Python's engine backtracks:
``**/a*a*a*a*a*a*a*a*a*a*b`` alone takes minutes against a file name of sixty ``a``; the cost
grows as the name length to the power of the wildcards that can each match many ways. No
linear-time engine is usable here (google-re2 cannot even compile a few thousand ordinary
patterns), so patterns are limited instead, to what real ignore files use:

- at most :data:`MAX_STARS_PER_SEGMENT` ``*`` in one path segment (``a*b*c``);
- at most :data:`MAX_DOUBLE_STARS` ``**`` segments;
- at most :data:`MAX_WILDCARDS` wildcards in all (a ``**`` segment counts as one);
- at most :data:`MAX_PATTERNS` patterns.

A refused pattern is named by file and line, as is a pattern pathspec cannot parse.

pathspec is imported only when the project has an ignore file: with what it pulls in (asyncio,
typing_extensions) it costs more than the rest of a local run's start-up. The fixed exclusions
are a few simple shapes, matched by :class:`FixedExclusions` exactly as gitignore would.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SnapshotError

if TYPE_CHECKING:
    import pathspec

__all__ = ["FixedExclusions", "IgnoreRules", "IGNORE_FILES", "MAX_PATTERNS", "MAX_WILDCARDS"]

IGNORE_FILES = (".amlignore", ".gitignore")
MAX_PATTERNS = 5_000
MAX_WILDCARDS = 3
MAX_STARS_PER_SEGMENT = 2
MAX_DOUBLE_STARS = 2


def _stars_per_segment(pattern: str) -> list[int]:
    """Unescaped ``*`` in each '/'-separated segment; -1 marks a ``**`` segment. A ``*`` inside
    ``[...]`` is counted too: over-counting a rare pattern is safe, under-counting is not."""
    segments: list[str] = [""]
    counts = [0]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            segments[-1] += pattern[i : i + 2]
            i += 2
            continue
        if char == "/":
            segments.append("")
            counts.append(0)
        else:
            segments[-1] += char
            counts[-1] += char == "*"
        i += 1
    return [-1 if len(seg) >= 2 and set(seg) == {"*"} else n for seg, n in zip(segments, counts)]


def _too_complex(line: str) -> str | None:
    pattern = line.strip().lstrip("!").strip("/")
    per_segment = _stars_per_segment(pattern)
    double = per_segment.count(-1)
    stars = [n for n in per_segment if n > 0]
    if max(stars, default=0) > MAX_STARS_PER_SEGMENT:
        return f"more than {MAX_STARS_PER_SEGMENT} '*' in one path segment"
    if double > MAX_DOUBLE_STARS:
        return f"more than {MAX_DOUBLE_STARS} '**'"
    if double + sum(stars) > MAX_WILDCARDS:
        return f"more than {MAX_WILDCARDS} wildcards in all"
    return None


def _read_patterns(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    patterns = 0
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        patterns += 1
        if patterns > MAX_PATTERNS:
            raise SnapshotError(
                f"{path} has more than {MAX_PATTERNS:,} patterns; sparkjobs reads at most that many "
                "(matching costs time for every file). Merge patterns, or ignore whole folders."
            )
        reason = _too_complex(text)
        if reason:
            raise SnapshotError(
                f"{path}, line {number}: the pattern {text[:80]!r} has {reason}. Matching such patterns takes "
                f"exponential time, so sparkjobs allows at most {MAX_WILDCARDS} wildcards per pattern, "
                f"{MAX_STARS_PER_SEGMENT} '*' per path segment and {MAX_DOUBLE_STARS} '**'; simplify it."
            )
    return lines


def _compile(path: Path, lines: list[str]) -> pathspec.GitIgnoreSpec:
    import pathspec  # only here: see the module's docstring

    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError:  # pathspec's GitIgnorePatternError; find the line to name
        pass
    for number, line in enumerate(lines, 1):
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except ValueError:
            raise SnapshotError(
                f"{path}, line {number}: the pattern '{line.strip()[:80]}' is not valid gitignore syntax; fix or remove it."
            ) from None
    raise SnapshotError(f"{path} has patterns that cannot be read together.")  # pragma: no cover


class FixedExclusions:
    """sparkjobs' own exclusions, in the three gitignore shapes they use: ``name/`` (a folder
    of that name at any depth), ``*.ext`` (any file or folder name with that ending) and
    ``/path/`` (that folder under the root). Any other shape is refused: use pathspec for it."""

    def __init__(self, patterns: list[str]) -> None:
        self._names: set[str] = set()
        self._endings: list[str] = []
        self._folders: list[str] = []
        for pattern in patterns:
            body = pattern.strip("/")
            if pattern.startswith("/") and pattern.endswith("/") and body:
                self._folders.append(body + "/")  # a path, taken literally
            elif any(c in body for c in "?[]\\!/") or not body:
                raise ValueError(f"not a fixed exclusion: {pattern!r}")
            elif body.startswith("*") and "*" not in body[1:] and not pattern.endswith("/"):
                self._endings.append(body[1:])
            elif pattern.endswith("/") and "*" not in body:
                self._names.add(body)
            else:
                raise ValueError(f"not a fixed exclusion: {pattern!r}")

    def match_file(self, relative: str) -> bool:
        """``relative`` is a POSIX path under the root; a folder's ends with ``/``."""
        parts = relative.rstrip("/").split("/")
        folders = parts if relative.endswith("/") else parts[:-1]
        return (any(part in self._names for part in folders)
                or any(part.endswith(ending) for part in parts for ending in self._endings)
                or any(relative.startswith(folder) for folder in self._folders))


class IgnoreRules:
    """The user's rules, plus exclusions that no ``!pattern`` in them can undo."""

    def __init__(self, root: Path, always_excluded: list[str]) -> None:
        self._always = FixedExclusions(always_excluded)
        self._user: pathspec.GitIgnoreSpec | None = None  # no ignore file: nothing to match
        for name in IGNORE_FILES:
            path = root / name
            if path.is_file():
                self._user = _compile(path, _read_patterns(path))
                break  # .amlignore replaces .gitignore, as in Azure ML Workbench

    def always_excluded(self, relative: str) -> bool:
        return self._always.match_file(relative)

    def match_file(self, relative: str) -> bool:
        return self._always.match_file(relative) or (self._user is not None and self._user.match_file(relative))
