"""The launch spec: what one run asks of the bootstrap, validated, and the locations it names.

The JSON schema is drawn in ``launch.py``'s docstring. Unknown keys are refused, so a misspelt key
cannot silently lose a run's outputs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

__all__ = [
    "EXIT_BOOTSTRAP", "SPEC_VERSION", "BootstrapError", "EnvironmentSpec", "LaunchSpec", "child_uri", "is_relative_posix", "local_path",
]  # fmt: skip

SPEC_VERSION = 1
EXIT_BOOTSTRAP = 2

# A scheme has two or more characters, so a Windows drive letter ("C:\\") is not one.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_LOCATION_KEYS = (
    "snapshot_archive", "snapshot_manifest", "objects_uri", "outputs_uri", "log_uri", "credentials_uri", "exit_uri",
    "metrics_uri", "params_uri", "error_path", "work_dir",
)
_SPEC_KEYS = frozenset(("version", "run_id", "script", "args", "env", "environment", *_LOCATION_KEYS))
_PYTHON = re.compile(r"^[0-9]+\.[0-9]+$")


class BootstrapError(Exception):
    """The launch spec or a file it names cannot be used; str() says what to fix."""


@dataclass(frozen=True)
class EnvironmentSpec:
    """The run's Python dependencies: a folder to put on sys.path, and what they were built for."""

    path: str  # a local path, or relative to the folder the bootstrap starts in (YARN's archive)
    python: str  # "3.11": the major.minor the wheels were chosen for
    digest: str

    @classmethod
    def from_json(cls, data: Any) -> EnvironmentSpec | None:
        return None if data is None else cls(path=data["path"], python=data["python"], digest=data["digest"])


@dataclass(frozen=True)
class LaunchSpec:
    """One run's instructions to the bootstrap (the JSON schema is in launch.py's docstring)."""

    run_id: str
    script: str
    args: tuple[str, ...] = ()
    snapshot_archive: str | None = None
    snapshot_manifest: str | None = None
    objects_uri: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    outputs_uri: str | None = None
    log_uri: str | None = None
    credentials_uri: str | None = None
    exit_uri: str | None = None
    metrics_uri: str | None = None
    params_uri: str | None = None
    error_path: str | None = None  # a local file for the bootstrap's own error (the driver runs here)
    work_dir: str | None = None  # a local folder for the bootstrap's temp folder, removed by sparkjobs
    environment: EnvironmentSpec | None = None

    @classmethod
    def from_json(cls, data: Any) -> LaunchSpec:
        """Validate a decoded spec, reporting every problem in one message."""
        if not isinstance(data, dict):
            raise BootstrapError("The launch spec must be a JSON object.")
        problems = _spec_problems(data)
        if problems:
            raise BootstrapError("The launch spec is invalid: " + "; ".join(problems) + ".")
        return cls(
            run_id=data["run_id"],
            script=data["script"],
            args=tuple(data.get("args") or ()),
            env=dict(data.get("env") or {}),
            environment=EnvironmentSpec.from_json(data.get("environment")),
            **{key: data.get(key) for key in _LOCATION_KEYS},
        )


def _spec_problems(data: dict[str, Any]) -> list[str]:
    problems = [f"unknown key {key!r}" for key in sorted(set(data) - _SPEC_KEYS)]
    if data.get("version") != SPEC_VERSION:
        problems.append(f"version is {data.get('version')!r}, this bootstrap reads version {SPEC_VERSION}")
    if not isinstance(data.get("run_id"), str) or not data["run_id"]:
        problems.append("run_id must be a non-empty string")
    script = data.get("script")
    if not isinstance(script, str) or not is_relative_posix(script):
        problems.append(f"script must be a relative POSIX path without '..' (got {script!r})")
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        problems.append("args must be a list of strings")
    env = data.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        problems.append("env must map strings to strings")
    problems += _environment_problems(data.get("environment"))
    for key in _LOCATION_KEYS:
        if data.get(key) is not None and (not isinstance(data[key], str) or not data[key]):
            problems.append(f"{key} must be a non-empty string or null")
    if data.get("snapshot_archive") and data.get("snapshot_manifest"):
        problems.append("give snapshot_archive or snapshot_manifest, not both")
    for key in ("snapshot_archive", "snapshot_manifest"):
        if data.get(key) and not data.get("outputs_uri"):
            problems.append(f"{key} needs outputs_uri, or ./outputs would be lost with the temp folder")
    if data.get("snapshot_manifest") and not data.get("objects_uri"):
        problems.append("snapshot_manifest needs objects_uri, where the snapshot's file contents are")
    return problems


def _environment_problems(environment: Any) -> list[str]:
    if environment is None:
        return []
    shape = 'environment must be null or {"path": "...", "python": "X.Y", "digest": "..."}'
    if not isinstance(environment, dict) or set(environment) != {"path", "python", "digest"}:
        return [shape]
    if not all(isinstance(value, str) and value for value in environment.values()):
        return [shape]
    if not _PYTHON.match(environment["python"]):
        return [f"environment.python must be a major.minor version such as 3.11 (got {environment['python']!r})"]
    return []


def is_relative_posix(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and "\\" not in path and ".." not in parts


def local_path(location: str) -> str | None:
    """The local file a location names (a plain path, ``file:/x`` or ``file:///x``), else None."""
    match = _SCHEME.match(location)
    if match is None:
        return location
    if match.group(1).lower() == "file":
        return url2pathname(urlparse(location).path)
    return None


def child_uri(folder_uri: str, relative: str) -> str:
    """``relative`` inside a folder URI; appending (not rstrip) keeps ``wasbs:///x`` intact."""
    return (folder_uri if folder_uri.endswith("/") else folder_uri + "/") + relative
