"""Resolve and install requirements with pip, for another machine's platform and Python.

``pip install --target`` with ``--platform``, ``--python-version`` and ``--only-binary=:all:``
installs wheels for the cluster, not for this machine; ``--report`` says exactly which wheel
(name, version, SHA-256) each package came from. pip's own failure is turned into one sentence
naming the cause: a package that does not exist, one with no wheel for the platform, a conflict.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..errors import EnvironmentBuildError
from . import ResolvedPackage

__all__ = ["install", "PIP"]

#: The pip that resolves: this interpreter's, configured as the user configured it (index, proxy).
PIP = (sys.executable, "-m", "pip")
_TIMEOUT = 30 * 60  # a large environment on a slow link; never forever


def install(requirements: tuple[str, ...], python: str, platform: str, dest: Path, *, source: str) -> tuple[ResolvedPackage, ...]:
    """Install ``requirements`` into ``dest`` for ``python`` on ``platform``; the packages pip chose."""
    report = dest.parent / "pip-report.json"
    command = [
        *PIP, "install", "--no-input", "--disable-pip-version-check", "--no-compile",
        "--no-warn-script-location", "--target", str(dest), "--platform", platform, "--python-version", python,
        "--implementation", "cp", "--only-binary=:all:", "--report", str(report), *requirements,
    ]
    done = _pip(command)
    if done.returncode != 0:
        # pip explains a conflict on stdout, and its errors on stderr.
        raise EnvironmentBuildError(_failure(done.stderr, done.stdout + "\n" + done.stderr, python, platform, source))
    try:
        items = json.loads(report.read_text())["install"]
        return tuple(sorted((_package(item) for item in items), key=lambda p: p.name))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EnvironmentBuildError(f"pip's report of what it installed for {source} cannot be read ({exc}).") from None
    finally:
        report.unlink(missing_ok=True)


def _pip(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise EnvironmentBuildError(f"pip did not finish within {_TIMEOUT // 60} minutes; check the network.") from None


def _package(item: dict) -> ResolvedPackage:
    metadata, info = item["metadata"], item["download_info"]
    hashes = info.get("archive_info", {}).get("hashes") or {}
    sha256 = hashes.get("sha256") or info.get("archive_info", {}).get("hash", "").partition("sha256=")[2]
    if not sha256:  # the digest must cover exact bytes; a wheel without a known hash cannot be keyed
        raise KeyError(f"no SHA-256 for {metadata['name']}")
    return ResolvedPackage(canonicalize_name(metadata["name"]), metadata["version"], sha256)


def _failure(stderr: str, output: str, python: str, platform: str, source: str) -> str:
    """One sentence: what was wrong, what pip said, and what to do."""
    errors = [line[len("ERROR: "):].strip() for line in stderr.splitlines() if line.startswith("ERROR: ")]
    where = f"for Python {python} on {platform}"
    head = f"The dependencies in {source} cannot be installed {where}"
    missing = next((m for e in errors if (m := re.match(r"No matching distribution found for (.+)$", e))), None)
    if missing:
        wanted = missing[1].strip()
        return f"{head}: {_why_missing(wanted, stderr)} (pip: {_short(errors[0])})."
    conflict = next((e for e in errors if e.startswith("Cannot install")), None)
    if conflict:
        causes = _conflict_causes(output)
        return f"{head}: the requirements conflict ({conflict.rstrip('.')}{': ' + causes if causes else ''}); loosen or change a pin."
    said = "; ".join(_short(e) for e in errors[:2]) or _short(stderr.strip().splitlines()[-1] if stderr.strip() else "no output")
    return f"{head}: pip failed ({said})."


def _why_missing(wanted: str, stderr: str) -> str:
    """pip says "from versions: none" both when a project does not exist and when it has no
    wheel for the platform; asking the index for every version (source ones too) tells which."""
    listed = re.search(r"\(from versions: ([^)]*)\)", stderr)
    name = re.split(r"[\s<>=!~;\[(]", wanted, maxsplit=1)[0]
    if listed and listed[1].strip() != "none":
        return (f"{name} has no version matching '{wanted}' with a wheel for this platform and Python (the versions "
                f"with one are {listed[1].strip()})")
    versions = _all_versions(name)
    if not versions:
        return f"there is no package {name} on the package index; check its name"
    matching = [v for v in versions if Requirement(wanted).specifier.contains(v, prereleases=True)] if _parses(wanted) else versions
    if not matching:
        return f"{name} has no version that matches '{wanted}' (it has {', '.join(versions[:5])}{', ...' if len(versions) > 5 else ''})"
    return (f"{wanted} is published only as source (no wheel for this platform and Python), and sparkjobs installs "
            "wheels only, since the cluster cannot build it; pick a version with a wheel, or build one and publish it")


def _all_versions(name: str) -> list[str]:
    done = _pip([*PIP, "index", "versions", name, "--disable-pip-version-check", "--no-input"])
    found = re.search(r"Available versions: (.+)", done.stdout)
    return [v.strip() for v in found[1].split(",")] if found else []


def _parses(wanted: str) -> bool:
    try:
        Requirement(wanted)
    except ValueError:
        return False
    return True


def _conflict_causes(stderr: str) -> str:
    lines = stderr.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if "The conflict is caused by" in line) + 1
    except StopIteration:
        return ""
    causes = []
    for line in lines[start:]:
        if not line.strip() or not line.startswith(" "):
            break
        causes.append(line.strip())
    return "; ".join(causes)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."
