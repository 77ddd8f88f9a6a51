"""Which project a command is about, found as git finds its repository: the nearest folder,
from where the user stands upward, that has an ``aml_config/`` folder."""
from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_DIR", "find_project", "enclosing_project"]

CONFIG_DIR = "aml_config"


def _is_project(folder: Path) -> bool:
    try:
        return (folder / CONFIG_DIR).is_dir()
    except OSError:  # a folder above that we may not look into is not a project of ours
        return False


def find_project(start: Path) -> Path | None:
    """The nearest folder from ``start`` upward with ``aml_config/``, or None."""
    here = Path(start).expanduser().resolve()
    return next((folder for folder in (here, *here.parents) if _is_project(folder)), None)


def enclosing_project(folder: Path) -> Path | None:
    """The project that ``folder`` lies inside of, not counting ``folder`` itself."""
    here = Path(folder).expanduser().resolve()
    return find_project(here.parent) if here.parent != here else None
