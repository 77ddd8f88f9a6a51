"""Reading one configuration file: its YAML, its keys checked against a schema, its problems
collected (config.py reads the run configuration with these; project_config.py reads project.yml)."""
from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from .config_checks import Checker, Invalid, short
from .config_yaml import YamlRefused, load_yaml
from .errors import ConfigError
from .wording import sentence

if TYPE_CHECKING:
    from .workbench_keys import ConfigNotice

__all__ = ["Problems", "read_yaml", "check_keys", "relative", "shown"]


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: Path, message: str) -> None:
        self.items.append(f"{path}: {message}")

    def raise_if_any(self) -> None:
        if len(self.items) == 1:
            raise ConfigError(sentence(f"Invalid configuration: {self.items[0]}"))  # "did you mean 'master'?"
        if self.items:
            listed = "".join(f"\n  - {item}" for item in self.items)
            raise ConfigError(f"Invalid configuration ({len(self.items)} problems):{listed}")


def read_yaml(path: Path, problems: Problems, named_by: str = "") -> dict[str, Any] | None:
    try:
        data = load_yaml(path)
    except FileNotFoundError:
        problems.add(path, "file not found" + (f" (named by {named_by})" if named_by else ""))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(path, f"cannot be read ({exc})")
        return None
    except YamlRefused as exc:
        problems.add(path, str(exc))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or "syntax error"
        problems.add(path, f"is not valid YAML{where}: {reason}")
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.add(path, "must be a YAML mapping of keys to values")
        return None
    return data


def check_keys(path: Path, data: dict[str, Any], schema: dict[str, tuple[str, Checker]], problems: Problems,
               handled: tuple[str, ...] = (), notices: list[ConfigNotice] | None = None, root: Path | None = None
               ) -> dict[str, Any]:
    """Check ``data`` against ``schema``; ``handled`` keys are Workbench's, read elsewhere
    (workbench_keys.py). Each schema key present adds an honoured notice to ``notices``."""
    if notices is not None:
        # Imported here: `runs list` reads project.yml and must not load Workbench's key tables.
        from .workbench_keys import ConfigNotice, Disposition
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key in handled:
            continue
        if key not in schema:
            problems.add(path, f"unknown key '{key}'{_hint(str(key), schema, handled)}")
            continue
        attribute, checker = schema[key]
        if raw is None:  # Workbench writes null for "the default"
            if notices is not None and root is not None:
                notices.append(ConfigNotice(relative(path, root), key, Disposition.HONOURED, "null: the default"))
            continue
        try:
            values[attribute] = checker(raw)
        except Invalid as exc:
            got = f" (got {short.repr(raw)})" if exc.show_value else ""
            problems.add(path, f"key '{key}' {exc}{got}")
            continue
        if notices is not None and root is not None:
            notices.append(ConfigNotice(relative(path, root), key, Disposition.HONOURED, shown(values[attribute])))
    return values


def _hint(key: str, schema: Mapping[str, Any], handled: tuple[str, ...]) -> str:
    """A typo's likely meaning; a real Workbench key of another file is named as such, never
    "corrected" into a different real key (CondaDependenciesFile is not SparkDependenciesFile)."""
    from .workbench_keys import other_file_of  # only for a problem: project.yml's readers skip it

    elsewhere = other_file_of(key)
    if elsewhere:
        return f"; '{key}' is a Workbench key for {elsewhere}"
    import difflib  # only for a typo, so every run does not pay for loading it

    known = [*schema, *handled]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"


def relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def shown(value: Any) -> str:
    """A resolved value as config check shows it: a mapping by its names only (environment
    values are the user's business, and could be long)."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Mapping):
        return "names: " + (", ".join(value) if value else "none")
    if isinstance(value, tuple):
        return " ".join(value) or "none"
    return str(value)
