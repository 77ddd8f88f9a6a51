"""What a run declares it needs: a pip requirements file, or Workbench's conda dependencies file.

Both become one list of pip requirement strings. No conda channel is reachable from here, so a
conda spec is kept only when its name is also a PyPI name (``_CONDA_TO_PYPI``); the others are
reported together in one ConfigError, which names the file and each line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from ..config_yaml import YamlRefused, load_yaml
from ..errors import ConfigError

__all__ = ["Declared", "declared_for", "read_requirements", "read_conda"]

#: Conda package names that are the same project on PyPI (conda's name -> PyPI's). A name not
#: here is refused rather than guessed: conda and PyPI names can mean different projects.
_CONDA_TO_PYPI = {
    name: name
    for name in (
        "numpy", "scipy", "pandas", "scikit-learn", "matplotlib", "seaborn", "statsmodels", "nltk", "requests",
        "six", "pyyaml", "joblib", "cython", "sympy", "networkx", "pillow", "h5py", "xgboost", "lightgbm",
        "tabulate", "ujson", "toolz", "cloudpickle", "pyarrow", "python-dateutil", "pytz",
        "beautifulsoup4", "lxml", "sqlalchemy", "jinja2", "click", "tqdm", "attrs", "more-itertools", "simplejson",
        "tensorflow", "msgpack",
    )
}
_CONDA_TO_PYPI.update({"msgpack-python": "msgpack", "pytorch": "torch", "py-xgboost": "xgboost"})
#: Workbench's template listed these for its own tools (notebooks, its logger); a job needs none.
_WORKBENCH_ONLY = re.compile(r"^(ipykernel|jupyter|notebook|azureml[-._a-z]*|azure-ml-api-sdk)$")
_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?(?P<name>[A-Za-z0-9][\w.-]*)\s*(?P<version>[=<>!~].*)?$")


@dataclass(frozen=True)
class Declared:
    """The requirements of a run, as pip strings, and where they came from."""

    requirements: tuple[str, ...]
    source: str  # the declaring file, relative to the project
    python: str | None = None  # a conda file's python=X.Y, if any
    notices: tuple[str, ...] = ()  # one line each: what was ignored, and why

    @property
    def text(self) -> str:
        """What identifies the declaration: the same text means the same environment."""
        return "\n".join(self.requirements)


def declared_for(root: Path, requirements_file: str | None, conda_file: str | None) -> Declared | None:
    """The run's declared dependencies; None when it declares none."""
    if requirements_file and conda_file:
        raise ConfigError("A run configuration may name RequirementsFile or CondaDependenciesFile, not both; keep one.")
    if requirements_file:
        return read_requirements(root / requirements_file, requirements_file)
    if conda_file:
        return read_conda(root / conda_file, conda_file)
    return None


def _read_text(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"The dependencies file {source} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The dependencies file {source} cannot be read ({exc}).") from None


def read_requirements(path: Path, source: str) -> Declared:
    """pip's requirements syntax: one requirement a line, ``#`` comments. Options (``-r``,
    ``--index-url``) are refused: the index is this machine's pip configuration."""
    lines = []
    problems = []
    for number, raw in enumerate(_read_text(path, source).splitlines(), 1):
        line = re.split(r"(^|\s)#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            problems.append(f"line {number} ({line!r}) is a pip option, which sparkjobs does not take there")
            continue
        try:
            lines.append(str(Requirement(line)))
        except InvalidRequirement as exc:
            problems.append(f"line {number} ({line!r}) is not a requirement: {exc}")
    _raise_if_any(source, problems)
    return Declared(tuple(lines), source)


def read_conda(path: Path, source: str) -> Declared:
    """Workbench's ``conda_dependencies.yml``: ``dependencies:`` with conda specs and a ``pip:`` list."""
    _read_text(path, source)  # the same message as a requirements file when missing
    try:
        data = load_yaml(path)
    except (yaml.YAMLError, YamlRefused) as exc:
        raise ConfigError(f"The dependencies file {source} is not valid YAML ({exc}).") from None
    dependencies = (data or {}).get("dependencies") if isinstance(data, dict) else None
    if not isinstance(dependencies, list):
        raise ConfigError(f"The dependencies file {source} must have a 'dependencies:' list, as conda's environment files do.")
    requirements: list[str] = []
    notices: list[str] = []
    unmapped: list[str] = []
    problems: list[str] = []
    python = None
    for item in dependencies:
        if isinstance(item, dict) and set(item) == {"pip"} and isinstance(item["pip"], list):
            for entry in item["pip"]:
                _add_pip(str(entry), requirements, notices, problems)
            continue
        spec = str(item).strip()
        match = _CONDA_SPEC.match(spec)
        if not match:
            problems.append(f"{spec!r} is not a conda package spec")
            continue
        name, version = match["name"].lower(), (match["version"] or "").strip()
        if name == "python":
            python = _python_of(version)
        elif _WORKBENCH_ONLY.match(name):
            notices.append(f"{source}: {name} is ignored: Workbench used it for its own tools, and a job does not need it.")
        elif name in _CONDA_TO_PYPI:
            requirements.append(_pip_spec(_CONDA_TO_PYPI[name], version))
        else:
            unmapped.append(spec)
    if unmapped:
        problems.append(
            f"{_listed(unmapped)} {'is a conda package' if len(unmapped) == 1 else 'are conda packages'} with no known "
            "PyPI equivalent, and no conda channel is reachable from here; put the PyPI name under '- pip:' instead"
        )
    _raise_if_any(source, problems)
    return Declared(tuple(requirements), source, python, tuple(notices))


def _add_pip(entry: str, requirements: list[str], notices: list[str], problems: list[str]) -> None:
    try:
        requirement = Requirement(entry)
    except InvalidRequirement:
        if "azuremldownloads" in entry or "/azureml" in entry:  # Workbench's own wheels, by URL
            notices.append("A Workbench wheel URL under 'pip:' is ignored: sparkjobs brings what azureml.logging needs.")
        else:
            problems.append(f"pip entry {entry!r} is not a requirement")
        return
    if _WORKBENCH_ONLY.match(requirement.name.lower()):
        notices.append(f"pip entry {requirement.name} is ignored: sparkjobs brings what Workbench's azureml.logging did.")
        return
    requirements.append(str(requirement))


def _pip_spec(name: str, version: str) -> str:
    """conda's ``=1.4`` means 1.4.*, ``==1.4.2`` and ``>=1.4`` mean what pip says."""
    if not version:
        return name
    if version.startswith("=") and not version.startswith("=="):
        version = version[1:].split("=")[0].rstrip("*").rstrip(".")  # a build string after '=' means nothing to pip
        return f"{name}=={version}.*"
    return f"{name}{version}"


def _python_of(version: str) -> str | None:
    try:
        parsed = Version(version.lstrip("=<>!~").split(",")[0].rstrip(".*") or "x")
    except InvalidVersion:
        return None
    return f"{parsed.major}.{parsed.minor}"


def _listed(items: list[str]) -> str:
    quoted = [f"'{item}'" for item in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _raise_if_any(source: str, problems: list[str]) -> None:
    if len(problems) == 1:
        raise ConfigError(f"The dependencies file {source}: {problems[0]}.")
    if problems:
        raise ConfigError(f"The dependencies file {source} has {len(problems)} problems: " + "; ".join(problems) + ".")
