"""The project's own settings, ``aml_config/project.yml``: its name and where its runs are kept.

Apart from the run configuration's modules (config.py), so that the history commands, which need
only these, start without loading them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .config_checks import Checker, path_segment, positive_int, string
from .config_files import Problems, check_keys, read_yaml
from .discovery import CONFIG_DIR
from .errors import ConfigError

__all__ = ["ProjectSettings", "load_project"]


@dataclass(frozen=True)
class ProjectSettings:
    root: Path
    name: str
    workspace: str = "default"
    history: str | None = None  # run store location; None means $SPARKJOBS_HOME
    snapshot_cap_bytes: int | None = None  # None: the target type's default (snapshot_cap_for)


_PROJECT_KEYS: dict[str, tuple[str, Checker]] = {
    "name": ("name", path_segment),
    "workspace": ("workspace", path_segment),
    "history": ("history", string),
    "snapshotCapMB": ("snapshot_cap_mb", positive_int),
}


def load_project(root: Path | str, environ: Mapping[str, str]) -> ProjectSettings:
    """Read ``aml_config/project.yml`` (optional). ``SPARKJOBS_HISTORY`` overrides its ``history``."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"Project folder {root} does not exist.")
    problems = Problems()
    path = root / CONFIG_DIR / "project.yml"
    values: dict[str, Any] = {}
    if path.exists():
        data = read_yaml(path, problems)
        if data is not None:
            values = check_keys(path, data, _PROJECT_KEYS, problems)
    problems.raise_if_any()
    cap_mb = values.pop("snapshot_cap_mb", None)
    history = environ.get("SPARKJOBS_HISTORY") or values.pop("history", None)
    values.pop("history", None)
    return ProjectSettings(
        root=root,
        name=values.pop("name", None) or root.name,
        history=history,
        snapshot_cap_bytes=cap_mb * 1024 * 1024 if cap_mb else None,
        **values,
    )
