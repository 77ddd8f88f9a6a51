"""Load and validate ``aml_config/`` into frozen settings, at the edge.

Key names follow Azure ML Workbench where they apply (``Target``, ``Framework``,
``ArgumentVector``, ``EnvironmentVariables``, ``SparkDependenciesFile``, ``nativeSharedDirectory``).
Every problem found is collected and reported in one ``ConfigError`` naming file and key, so a
user fixes them all in one go instead of one per attempt.
"""
from __future__ import annotations

import enum
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import yaml

from .config_yaml import YamlRefused, load_yaml
from .errors import ConfigError
from .packages import coordinate, repository
from .wording import sentence

__all__ = [
    "TargetType",
    "Framework",
    "ComputeSettings",
    "SparkDependencies",
    "ProjectSettings",
    "RunSettings",
    "load_project",
    "load_run_settings",
    "available_runconfigs",
    "snapshot_cap_for",
    "CONFIG_DIR",
]

CONFIG_DIR = "aml_config"
DEFAULT_SNAPSHOT_CAP_MB = 25
#: Cluster runs read code from content-addressed storage, so an unchanged 200 MB project costs
#: nothing to resubmit; local runs copy the whole snapshot every time, so Workbench's 25 MB stays.
CLUSTER_SNAPSHOT_CAP_MB = 1024
DEFAULT_SHARE_DIR = "~/.sparkjobs/share/"
#: How long a cluster batch may wait for YARN to start it before sparkjobs deletes it.
DEFAULT_START_TIMEOUT_MINUTES = 30.0
MAX_START_TIMEOUT_MINUTES = 7 * 24 * 60.0
#: Linux refuses to start a process with one argument or "NAME=value" string over 128 KiB
#: (MAX_ARG_STRLEN, the NUL included), or with all of them over ARG_MAX (usually 2 MiB, which
#: the inherited environment and spark-submit's own arguments share).
MAX_ARG_BYTES = 128 * 1024
MAX_ENVIRONMENT_BYTES = 1024 * 1024


class TargetType(str, enum.Enum):
    LOCAL = "local"
    SPARK = "spark"
    CLUSTER = "cluster"


class Framework(str, enum.Enum):
    PYSPARK = "PySpark"
    PYTHON = "Python"


@dataclass(frozen=True)
class ComputeSettings:
    name: str
    type: TargetType
    native_shared_directory: str = DEFAULT_SHARE_DIR
    master: str = "local[*]"
    deploy_mode: str = "client"
    livy: str | None = None
    username: str | None = None
    storage: str | None = None
    driver_memory: str | None = None
    executor_memory: str | None = None
    num_executors: int | None = None
    queue: str | None = None
    conf: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    verify: bool | str = True  # TLS verification, or a CA bundle path
    start_timeout_minutes: float = DEFAULT_START_TIMEOUT_MINUTES  # cluster: longest wait to start
    attach_storage: tuple[str, ...] = ()  # more storage accounts whose keys the job gets at run time
    python_version: str | None = None  # the cluster's Python ("3.8"): what environments are built for


@dataclass(frozen=True)
class SparkDependencies:
    configuration: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    packages: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    file: str = ""  # the dependencies file, relative to the project, for messages


@dataclass(frozen=True)
class ProjectSettings:
    root: Path
    name: str
    workspace: str = "default"
    history: str | None = None  # run store location; None means $SPARKJOBS_HOME
    snapshot_cap_bytes: int | None = None  # None: the target type's default (snapshot_cap_for)


@dataclass(frozen=True)
class RunSettings:
    name: str
    project: ProjectSettings
    compute: ComputeSettings
    framework: Framework = Framework.PYSPARK
    argument_vector: tuple[str, ...] = ("$file",)
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    dependencies: SparkDependencies = field(default_factory=SparkDependencies)
    #: The configuration files this run was loaded from (relative POSIX paths in the project):
    #: the snapshot always keeps them, so the run can be reproduced from it.
    config_files: tuple[str, ...] = ()
    # The run's Python dependencies (issue 12): a pip requirements file or Workbench's conda file.
    requirements_file: str | None = None
    conda_dependencies_file: str | None = None
    prepare_environment: bool = True


# ---- a tiny schema language: key -> (checker, required) ------------------------------------
Checker = Callable[[Any], Any]


class _Invalid(ValueError):
    def __init__(self, message: str, *, show_value: bool = True) -> None:
        super().__init__(message)
        self.show_value = show_value  # False when the value is huge or already named


#: Values quoted in messages are cut short: a config value can be megabytes long.
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlist = _short.maxdict = 4
_short.maxlevel = 2


def _string(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise _Invalid("must be a non-empty string")


def _scalar_string(value: Any) -> str:
    # Spark properties are strings; YAML turns 4 and true into numbers and booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise _Invalid("must be a string, number or boolean")


def _positive_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise _Invalid("must be a positive whole number")


def _memory(value: Any) -> str:
    text = _scalar_string(value).strip().lower()
    if text[:-1].isdigit() and text[-1] in "kmgt" or text.isdigit():
        return text
    raise _Invalid("must look like 512m or 4g")


def _string_list(value: Any) -> tuple[str, ...]:
    # Strict: YAML reads 1e3, 010 and 1.50 as numbers whose str() is not what was written, so
    # converting them would silently change an argument.
    if not isinstance(value, list):
        raise _Invalid("must be a list of strings")
    for index, item in enumerate(value, 1):
        if not isinstance(item, str):
            raise _Invalid(
                f"has item {index} ({_short.repr(item)}), which is not a string; put quotes around it so YAML "
                "keeps it exactly as written"
            )
    return tuple(value)


def _argument_vector(value: Any) -> tuple[str, ...]:
    items = _string_list(value)
    for index, item in enumerate(items, 1):
        if "\0" in item:
            raise _Invalid(f"has a NUL character in item {index}, which no command line can carry")
        if len(item.encode("utf-8", "surrogatepass")) >= MAX_ARG_BYTES:
            raise _Invalid(f"has item {index} over Linux's limit of 128 KiB for one argument", show_value=False)
    return items


def _path_segment(value: Any) -> str:
    """A name that becomes one folder (shared folder, storage prefix): never a path."""
    text = _string(value)
    if text in (".", "..") or any(c in text for c in "/\\\0"):
        raise _Invalid("must be a single folder name, without '/', '\\', NUL, and not '.' or '..'")
    return text


def _environment(value: Any) -> Mapping[str, str]:
    env = _string_map(value)
    problems: list[str] = []
    total = 0
    for name, text in env.items():
        size = len(f"{name}={text}".encode("utf-8", "surrogatepass")) + 1
        total += size
        if not name or "=" in name or "\0" in name:
            problems.append(f"has the name {_short.repr(name)}, which is empty or contains '=' or NUL")
        elif "\0" in text:
            problems.append(f"has a NUL character in the value of {name!r}")
        elif size > MAX_ARG_BYTES:
            problems.append(
                f"has a value of {size / 1024:.0f} KiB for {name!r}, over Linux's limit of 128 KiB for one "
                "variable; put it in a file in the project and pass its path instead"
            )
    if not problems and total > MAX_ENVIRONMENT_BYTES:
        problems.append(
            f"holds {total / 1024 / 1024:.1f} MiB in all, over sparkjobs' limit of 1 MiB (Linux starts a process only "
            "when its arguments and environment fit in ARG_MAX, usually 2 MiB); put large values in files"
        )
    if problems:
        raise _Invalid("; ".join(problems), show_value=False)
    return env


def _string_map(value: Any) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return MappingProxyType({k: _scalar_string(v) for k, v in value.items()})
    raise _Invalid("must be a mapping of names to strings")


def _enum(kind: type[enum.Enum]) -> Checker:
    def check(value: Any) -> enum.Enum:
        for member in kind:
            if isinstance(value, str) and value.lower() == member.value.lower():
                return member
        raise _Invalid("must be one of " + ", ".join(m.value for m in kind))

    return check


def _minutes(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= MAX_START_TIMEOUT_MINUTES:
        return float(value)
    raise _Invalid(f"must be a number of minutes above 0 and at most {MAX_START_TIMEOUT_MINUTES:.0f} (7 days)")


def _verify(value: Any) -> bool | str:
    if isinstance(value, (bool, str)) and value != "":
        return value
    raise _Invalid("must be true, false or the path of a CA bundle")


def _maven(value: Any) -> tuple[str, ...]:
    return _each(value, coordinate, "'group:artifact:version' strings or mappings of group, artifact and version")


def _repositories(value: Any) -> tuple[str, ...]:
    return _each(value, repository, "repository URLs or mappings with a url")


def _each(value: Any, parse: Callable[[Any], str], what: str) -> tuple[str, ...]:
    # Both sparkjobs' strings and Workbench's mappings (packages.py).
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of {what}")
    try:
        return tuple(parse(item) for item in value)
    except ValueError as exc:
        raise _Invalid(str(exc), show_value=False) from None


def _python_version(value: Any) -> str:
    # YAML reads 3.10 as the number 3.1, so a number is taken only where it cannot mean that.
    text = str(value) if isinstance(value, (str, float)) else ""
    if not re.fullmatch(r"3\.\d{1,2}", text) or (isinstance(value, float) and text == "3.1"):
        raise _Invalid('must be a Python version such as "3.8", in quotes (YAML reads 3.10 as 3.1)')
    return text


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid("must be true or false")


def _accounts(value: Any) -> tuple[str, ...]:
    names = _string_list(value)
    for name in names:
        if not re.fullmatch(r"[a-z0-9]{3,24}", name):
            raise _Invalid(f"entry {name!r} is not a storage account name (3-24 lowercase letters and digits)")
    return tuple(dict.fromkeys(names))


_COMPUTE_KEYS: dict[str, tuple[str, Checker]] = {
    "type": ("type", _enum(TargetType)),
    "nativeSharedDirectory": ("native_shared_directory", _string),
    "master": ("master", _string),
    "deployMode": ("deploy_mode", _string),
    "livy": ("livy", _string),
    "username": ("username", _string),
    "storage": ("storage", _string),
    "driverMemory": ("driver_memory", _memory),
    "executorMemory": ("executor_memory", _memory),
    "numExecutors": ("num_executors", _positive_int),
    "queue": ("queue", _string),
    "conf": ("conf", _string_map),
    "verify": ("verify", _verify),
    "startTimeoutMinutes": ("start_timeout_minutes", _minutes),
    "attachStorage": ("attach_storage", _accounts),
    "pythonVersion": ("python_version", _python_version),
}
_REQUIRED_BY_TYPE = {
    TargetType.LOCAL: (),
    TargetType.SPARK: ("master",),
    TargetType.CLUSTER: ("livy",),  # without storage, the cluster's own (targets/ambari.py)
}
_RUNCONFIG_KEYS: dict[str, tuple[str, Checker]] = {
    "Target": ("target", _path_segment),
    "Framework": ("framework", _enum(Framework)),
    "ArgumentVector": ("argument_vector", _argument_vector),
    "EnvironmentVariables": ("environment", _environment),
    "SparkDependenciesFile": ("dependencies_file", _string),
    "RequirementsFile": ("requirements_file", _string),
    "CondaDependenciesFile": ("conda_dependencies_file", _string),
    "PrepareEnvironment": ("prepare_environment", _boolean),
}
_DEPENDENCY_KEYS: dict[str, tuple[str, Checker]] = {
    "configuration": ("configuration", _string_map),
    "packages": ("packages", _maven),
    "repositories": ("repositories", _repositories),
}
_PROJECT_KEYS: dict[str, tuple[str, Checker]] = {
    "name": ("name", _path_segment),
    "workspace": ("workspace", _path_segment),
    "history": ("history", _string),
    "snapshotCapMB": ("snapshot_cap_mb", _positive_int),
}


class _Problems:
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


def _read_yaml(path: Path, problems: _Problems, named_by: str = "") -> dict[str, Any] | None:
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


def _check(path: Path, data: dict[str, Any], schema: dict[str, tuple[str, Checker]], problems: _Problems) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in schema:
            import difflib  # only for a typo, so every run does not pay for loading it

            close = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(schema)}"
            problems.add(path, f"unknown key '{key}'{hint}")
            continue
        attribute, checker = schema[key]
        if raw is None:
            continue
        try:
            values[attribute] = checker(raw)
        except _Invalid as exc:
            shown = f" (got {_short.repr(raw)})" if exc.show_value else ""
            problems.add(path, f"key '{key}' {exc}{shown}")
    return values


def snapshot_cap_for(settings: "RunSettings") -> int:
    if settings.project.snapshot_cap_bytes is not None:
        return settings.project.snapshot_cap_bytes
    megabytes = CLUSTER_SNAPSHOT_CAP_MB if settings.compute.type is TargetType.CLUSTER else DEFAULT_SNAPSHOT_CAP_MB
    return megabytes * 1024 * 1024


def available_runconfigs(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / CONFIG_DIR).glob("*.runconfig"))


def load_project(root: Path | str, environ: Mapping[str, str]) -> ProjectSettings:
    """Read ``aml_config/project.yml`` (optional). ``SPARKJOBS_HISTORY`` overrides its ``history``."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"Project folder {root} does not exist.")
    problems = _Problems()
    path = root / CONFIG_DIR / "project.yml"
    values: dict[str, Any] = {}
    if path.exists():
        data = _read_yaml(path, problems)
        if data is not None:
            values = _check(path, data, _PROJECT_KEYS, problems)
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


def load_run_settings(root: Path | str, name: str, environ: Mapping[str, str]) -> RunSettings:
    """Load ``aml_config/NAME.runconfig``, the compute it names, and its Spark dependencies."""
    project = load_project(root, environ)
    config_dir = project.root / CONFIG_DIR
    try:
        _path_segment(name)
    except _Invalid:
        raise ConfigError(f"The run configuration name {name!r} must be a plain name such as 'local', not a path.") from None
    problems = _Problems()
    runconfig_path = config_dir / f"{name}.runconfig"
    used = [runconfig_path, config_dir / "project.yml"]
    if not runconfig_path.exists():
        known = available_runconfigs(project.root)
        hint = f" Available: {', '.join(known)}." if known else " Run 'sparkjobs init' to create aml_config/."
        raise ConfigError(f"No run configuration '{name}': {runconfig_path} does not exist.{hint}")
    data = _read_yaml(runconfig_path, problems)
    run_values = _check(runconfig_path, data, _RUNCONFIG_KEYS, problems) if data is not None else {}
    if data is not None and "Target" not in data:
        problems.add(runconfig_path, "key 'Target' is required (the name of a .compute file)")

    compute = None
    target = run_values.pop("target", None)
    if target:
        named_by = f"key 'Target' in {runconfig_path.name}"
        compute = _load_compute(config_dir / f"{target}.compute", target, problems, named_by)
        used.append(config_dir / f"{target}.compute")

    dependencies = SparkDependencies()
    deps_file = run_values.pop("dependencies_file", None)
    if deps_file:
        deps_path = (project.root / deps_file).resolve()
        if project.root not in deps_path.parents:
            problems.add(runconfig_path, f"key 'SparkDependenciesFile' points outside the project ({deps_file})")
        else:
            deps_data = _read_yaml(deps_path, problems, f"key 'SparkDependenciesFile' in {runconfig_path.name}")
            used.append(deps_path)
            if deps_data is not None:
                file = deps_path.relative_to(project.root).as_posix()
                dependencies = SparkDependencies(**_check(deps_path, deps_data, _DEPENDENCY_KEYS, problems), file=file)

    for key, attribute in (("RequirementsFile", "requirements_file"), ("CondaDependenciesFile", "conda_dependencies_file")):
        named = run_values.get(attribute)
        full = (project.root / named).resolve() if named else None
        if full is not None and project.root not in full.parents:
            problems.add(runconfig_path, f"key '{key}' points outside the project ({named})")
        elif full is not None and not full.is_file():
            problems.add(runconfig_path, f"key '{key}' names {named}, which does not exist")
        elif full is not None:
            used.append(full)
            run_values[attribute] = full.relative_to(project.root).as_posix()

    argv = run_values.get("argument_vector")
    if argv is not None and not argv:
        problems.add(runconfig_path, "key 'ArgumentVector' must not be empty; use [\"$file\"]")
    problems.raise_if_any()
    assert compute is not None
    config_files = tuple(sorted({p.relative_to(project.root).as_posix() for p in used if p.is_file()}))
    return RunSettings(
        name=name, project=project, compute=compute, dependencies=dependencies, config_files=config_files, **run_values
    )


def _load_compute(path: Path, name: str, problems: _Problems, named_by: str) -> ComputeSettings | None:
    data = _read_yaml(path, problems, named_by)
    if data is None:
        return None
    values = _check(path, data, _COMPUTE_KEYS, problems)
    kind = values.get("type")
    if "type" not in data:
        problems.add(path, "key 'type' is required (local, spark or cluster)")
        return None
    if kind is None:
        return None
    for key in _REQUIRED_BY_TYPE[kind]:
        if key not in data:
            problems.add(path, f"key '{key}' is required for type '{kind.value}'")
    if kind is TargetType.SPARK and "master" in values and not values["master"].startswith(("spark://", "local", "yarn", "k8s://")):
        problems.add(path, f"key 'master' must be a Spark master URL such as spark://HOST:7077 (got {values['master']!r})")
    if kind is TargetType.CLUSTER and "livy" in values and not values["livy"].startswith(("http://", "https://")):
        problems.add(path, f"key 'livy' must be an http(s) URL (got {values['livy']!r})")
    if kind is TargetType.CLUSTER and "master" in data:
        problems.add(path, "key 'master' is not allowed for type 'cluster': Livy chooses the master")
    try:
        return ComputeSettings(name=name, **values)
    except TypeError as exc:  # pragma: no cover - the schema and dataclass are kept in step
        problems.add(path, str(exc))
        return None
