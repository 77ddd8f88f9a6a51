"""Maven packages of a dependencies file: the shapes it may list them in, and what spark-submit
says when one cannot be resolved.

Spark resolves ``packages`` (``--packages``, ``spark.jars.packages`` through Livy) with Apache
Ivy inside spark-submit, before any of the job runs: on this machine for ``local`` and ``spark``
targets, on the cluster's Livy server for ``cluster`` targets. A package Ivy finds in none of
its repositories ends spark-submit with::

    Exception in thread "main" java.lang.RuntimeException: [unresolved dependency: GROUP#ARTIFACT;VERSION: not found]

which :class:`PackageResolution` turns into one sentence that names the package the way the
dependencies file writes it, and says where resolution ran.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["MARK", "MARKS", "PackageResolution", "coordinate", "repository", "unresolved_coordinates"]

#: Workbench writes ``{group, artifact, version}`` mappings; sparkjobs' own shape is "g:a:v".
_FIELDS = ("group", "artifact", "version")
_UNRESOLVED = re.compile(r"unresolved dependency: ([^\s#;:\]]+)#([^\s#;:\]]+);([^\s:\],]+)")
#: Ivy's cache is not safe for two submissions that download the same jar at once: one of
#: them may find the jar gone when it copies it out (seen with two Livy batches here).
_RETRIEVE = re.compile(r"problem during retrieve of \S+: (?:java\.io\.)?(FileNotFoundException: \S+)")
#: What Ivy's exceptions say; cheap to test on every streamed line.
MARK = "unresolved dependency:"
MARKS = (MARK, "problem during retrieve of ")


def coordinate(entry: Any) -> str:
    """``group:artifact:version`` from either shape; ValueError with a sentence fragment if neither."""
    if isinstance(entry, dict):
        numbers = [name for name in _FIELDS if isinstance(entry.get(name), float)]
        if numbers:
            raise ValueError(f"entry {entry!r} has {numbers[0]} {entry[numbers[0]]!r}, which YAML read as a number; put "
                             "quotes around it so YAML keeps it exactly as written")
        missing = [name for name in _FIELDS if not _text(entry.get(name))]
        extra = sorted(str(k) for k in entry if k not in _FIELDS)
        if missing or extra:
            what = [f"lacks {', '.join(missing)}" if missing else "", f"has unknown keys {', '.join(extra)}" if extra else ""]
            raise ValueError(f"entry {entry!r} {' and '.join(w for w in what if w)}; a package mapping has group, artifact "
                             "and version")
        return ":".join(_text(entry[name]) for name in _FIELDS)
    parts = entry.split(":") if isinstance(entry, str) else []
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ValueError(f"entry {entry!r} is not a Maven coordinate group:artifact:version or a mapping of group, "
                         "artifact and version")
    return entry


def repository(entry: Any) -> str:
    """A repository URL from a string or Workbench's ``{url: ...}`` mapping."""
    if isinstance(entry, dict) and set(entry) == {"url"} and _text(entry["url"]):
        return _text(entry["url"])
    if isinstance(entry, str) and entry.strip():
        return entry
    raise ValueError(f"entry {entry!r} is neither a repository URL nor a mapping with one key, url")


def _text(value: Any) -> str:
    # Whole numbers print as written; floats are refused above (YAML reads 1.10 as 1.1).
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def unresolved_coordinates(lines: Iterable[str]) -> tuple[str, ...]:
    """Each package Ivy could not resolve, as ``group:artifact:version``, in order, once."""
    found: dict[str, None] = {}
    for line in lines:
        if MARK in line:
            for match in _UNRESOLVED.finditer(line):
                found[":".join(match.groups())] = None
    return tuple(found)


@dataclass(frozen=True)
class PackageResolution:
    """A run's packages and where spark-submit resolves them, to explain a failed resolution."""

    packages: tuple[str, ...]
    source: str  # the dependencies file, as the user knows it
    machine: str  # where spark-submit runs: "this machine", "the cluster's Livy server"

    @classmethod
    def of(cls, packages: tuple[str, ...], file: str, machine: str) -> PackageResolution | None:
        """None when there is nothing to resolve."""
        return cls(packages, file or "the dependencies file", machine) if packages else None

    def explain(self, lines: Iterable[str]) -> str | None:
        """One sentence naming the packages Ivy could not resolve, or None if it resolved them all."""
        lines = list(lines)
        missing = unresolved_coordinates(lines)
        if not missing:
            return self._retrieve_failed(lines)
        listed = [c for c in missing if c in self.packages]
        needed = [c for c in missing if c not in self.packages]
        named = []
        if listed:
            named.append(f"{_plural(listed, 'the package')} {_join(listed)} (from 'packages' in {self.source})")
        if needed:
            named.append(f"{_join(needed)}, which the listed packages need")
        return (
            f"spark-submit on {self.machine} could not resolve {' and '.join(named)}, so the job never started: Ivy found "
            f"{'it' if len(missing) == 1 else 'them'} in none of the repositories it tried (Maven Central, "
            "spark-packages and any listed under 'repositories'). Check the group, artifact and version, and that "
            f"{self.machine} can reach those repositories."
        )

    def _retrieve_failed(self, lines: list[str]) -> str | None:
        found = next((m for m in map(_RETRIEVE.search, lines) if m), None)
        if found is None:
            return None
        return (
            f"spark-submit on {self.machine} found the packages (from 'packages' in {self.source}) but could not copy "
            f"them out of Ivy's cache ({found.group(1)}), so the job never started. Ivy's cache is not safe for two "
            "submissions that download the same package at the same moment; run again."
        )


def _plural(items: list[str], singular: str) -> str:
    return singular if len(items) == 1 else singular + "s"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
