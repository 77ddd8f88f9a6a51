"""Load and validate ``aml_config/`` into frozen settings, at the edge.

Key names follow Azure ML Workbench where they apply (``Target``, ``Framework``,
``ArgumentVector``, ``EnvironmentVariables``, ``SparkDependenciesFile``, ``nativeSharedDirectory``);
Workbench's other keys are read by workbench_keys.py, and every key becomes a ConfigNotice on the
settings (config_models.py). Every problem found is collected and reported in one ``ConfigError`` naming file and key, so a
user fixes them all in one go instead of one per attempt.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from . import workbench_keys as workbench
from .config_checks import (
    Checker, Invalid, accounts, argument_vector, enum_of, environment, maven, memory, minutes, path_segment,
    positive_int, python_version, repositories, string, string_map, verify,
)
from .config_models import (  # re-exported: the settings are imported from here
    DEFAULT_SHARE_DIR, DEFAULT_START_TIMEOUT_MINUTES, ComputeSettings, Framework, ProjectSettings, RunSettings,
    SparkDependencies, TargetType,
)
from .config_files import Problems, check_keys, read_yaml, relative
from .discovery import CONFIG_DIR
from .errors import ConfigError
from .project_config import load_project
from .workbench_docker import refused_type
from .workbench_keys import ConfigNotice, Disposition

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
    "ConfigNotice",
    "Disposition",
    "CONFIG_DIR",
    "DEFAULT_SHARE_DIR",
    "DEFAULT_START_TIMEOUT_MINUTES",
]

DEFAULT_SNAPSHOT_CAP_MB = 25
#: Cluster runs read code from content-addressed storage, so an unchanged 200 MB project costs
#: nothing to resubmit; local runs copy the whole snapshot every time, so Workbench's 25 MB stays.
CLUSTER_SNAPSHOT_CAP_MB = 1024
#: Workbench's defaults when SparkDependenciesFile or CondaDependenciesFile is null.
DEFAULT_SPARK_DEPENDENCIES = f"{CONFIG_DIR}/spark_dependencies.yml"
DEFAULT_CONDA_DEPENDENCIES = f"{CONFIG_DIR}/conda_dependencies.yml"


_COMPUTE_KEYS: dict[str, tuple[str, Checker]] = {
    "type": ("type", enum_of(TargetType)),
    "nativeSharedDirectory": ("native_shared_directory", string),
    "master": ("master", string),
    "deployMode": ("deploy_mode", string),
    "livy": ("livy", string),
    "username": ("username", string),
    "storage": ("storage", string),
    "driverMemory": ("driver_memory", memory),
    "executorMemory": ("executor_memory", memory),
    "numExecutors": ("num_executors", positive_int),
    "queue": ("queue", string),
    "conf": ("conf", string_map),
    "verify": ("verify", verify),
    "startTimeoutMinutes": ("start_timeout_minutes", minutes),
    "attachStorage": ("attach_storage", accounts),
    "pythonVersion": ("python_version", python_version),
}
_REQUIRED_BY_TYPE = {
    TargetType.LOCAL: (),
    TargetType.SPARK: ("master",),
    TargetType.CLUSTER: ("livy",),  # without storage, the cluster's own (targets/ambari.py)
}
_RUNCONFIG_KEYS: dict[str, tuple[str, Checker]] = {
    "Target": ("target", path_segment),
    "Framework": ("framework", enum_of(Framework)),
    "ArgumentVector": ("argument_vector", argument_vector),
    "EnvironmentVariables": ("environment", environment),
    "SparkDependenciesFile": ("dependencies_file", string),
    "CondaDependenciesFile": ("conda_dependencies_file", string),
    "RequirementsFile": ("requirements_file", string),
}
_DEPENDENCY_KEYS: dict[str, tuple[str, Checker]] = {
    "configuration": ("configuration", string_map),
    "packages": ("packages", maven),
    "repositories": ("repositories", repositories),
}


def snapshot_cap_for(settings: "RunSettings") -> int:
    if settings.project.snapshot_cap_bytes is not None:
        return settings.project.snapshot_cap_bytes
    megabytes = CLUSTER_SNAPSHOT_CAP_MB if settings.compute.type is TargetType.CLUSTER else DEFAULT_SNAPSHOT_CAP_MB
    return megabytes * 1024 * 1024


def available_runconfigs(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / CONFIG_DIR).glob("*.runconfig"))


def load_run_settings(root: Path | str, name: str, environ: Mapping[str, str]) -> RunSettings:
    """Load ``aml_config/NAME.runconfig``, the compute it names, and its Spark dependencies."""
    project = load_project(root, environ)
    config_dir = project.root / CONFIG_DIR
    try:
        path_segment(name)
    except Invalid:
        raise ConfigError(f"The run configuration name {name!r} must be a plain name such as 'local', not a path.") from None
    problems = Problems()
    notices: list[ConfigNotice] = []
    runconfig_path = config_dir / f"{name}.runconfig"
    used = [runconfig_path, config_dir / "project.yml"]
    if not runconfig_path.exists():
        known = available_runconfigs(project.root)
        hint = f" Available: {', '.join(known)}." if known else " Run 'sparkjobs init' to create aml_config/."
        raise ConfigError(f"No run configuration '{name}': {runconfig_path} does not exist.{hint}")
    data = read_yaml(runconfig_path, problems)
    run_values: dict[str, Any] = {}
    if data is not None:
        handled = tuple(key for key in workbench.RUNCONFIG_KEYS if key not in _RUNCONFIG_KEYS)
        run_values = check_keys(runconfig_path, data, _RUNCONFIG_KEYS, problems, handled, notices, project.root)
        extra, found = workbench.runconfig_keys(relative(runconfig_path, project.root), data,
                                                lambda message: problems.add(runconfig_path, message))
        run_values.update(extra)
        notices += found
        if data.get("Target") is None:
            problems.add(runconfig_path, "key 'Target' is required (the name of a .compute file)")

    compute = None
    target = run_values.pop("target", None)
    if target:
        named_by = f"key 'Target' in {runconfig_path.name}"
        compute = _load_compute(config_dir / f"{target}.compute", target, problems, named_by, environ, notices)
        used.append(config_dir / f"{target}.compute")

    dependencies = SparkDependencies()
    deps_path = _named_file(project.root, runconfig_path, data, "SparkDependenciesFile", DEFAULT_SPARK_DEPENDENCIES,
                            problems, notices)
    if deps_path is not None:
        deps_data = read_yaml(deps_path, problems, f"key 'SparkDependenciesFile' in {runconfig_path.name}")
        used.append(deps_path)
        if deps_data is not None:
            file = deps_path.relative_to(project.root).as_posix()
            checked = check_keys(deps_path, deps_data, _DEPENDENCY_KEYS, problems, (), notices, project.root)
            dependencies = SparkDependencies(**checked, file=file)
    run_values.pop("dependencies_file", None)
    run_values.pop("conda_dependencies_file", None)
    conda_path = _named_file(project.root, runconfig_path, data, "CondaDependenciesFile", DEFAULT_CONDA_DEPENDENCIES,
                             problems, notices)
    if conda_path is not None:
        used.append(conda_path)
        run_values["conda_dependencies_file"] = conda_path.relative_to(project.root).as_posix()
        if not conda_path.is_file():
            problems.add(conda_path, f"file not found (named by key 'CondaDependenciesFile' in {runconfig_path.name})")
    requirements = run_values.get("requirements_file")
    requirements_path = (project.root / requirements).resolve() if requirements else None
    if requirements_path is not None and project.root not in requirements_path.parents:
        problems.add(runconfig_path, f"key 'RequirementsFile' points outside the project ({requirements})")
    elif requirements_path is not None and not requirements_path.is_file():
        problems.add(runconfig_path, f"key 'RequirementsFile' names {requirements}, which does not exist")
    elif requirements_path is not None:
        used.append(requirements_path)
        run_values["requirements_file"] = requirements_path.relative_to(project.root).as_posix()

    argv = run_values.get("argument_vector")
    if argv is not None and not argv:
        problems.add(runconfig_path, "key 'ArgumentVector' must not be empty; use [\"$file\"]")
    problems.raise_if_any()
    assert compute is not None
    config_files = tuple(sorted({p.relative_to(project.root).as_posix() for p in used if p.is_file()}))
    settings = RunSettings(name=name, project=project, compute=compute, dependencies=dependencies,
                           config_files=config_files, notices=_last_per_key(notices), **run_values)
    if settings.builds_environment:
        return settings
    return replace(settings, notices=tuple(
        _unbuilt(n, settings.unbuilt_because()) if n.key in ("CondaDependenciesFile", "RequirementsFile") else n
        for n in settings.notices
    ))


def _unbuilt(notice: ConfigNotice, because: str) -> ConfigNotice:
    """A dependencies file the run will not build: the target's Python is used as it is."""
    return ConfigNotice(notice.file, notice.key, Disposition.IGNORED,
                        f"no environment is prepared for this run ({because}): the job uses the packages the "
                        "target's Python has")


def _last_per_key(notices: list[ConfigNotice]) -> tuple[ConfigNotice, ...]:
    """One notice per key of each file: a Workbench reading (workbench_keys.py) comes after,
    and replaces, the schema check's."""
    return tuple({(n.file, n.key): n for n in notices}.values())


def _named_file(root: Path, runconfig: Path, data: Mapping[str, Any] | None, key: str, default: str,
                problems: Problems, notices: list[ConfigNotice]) -> Path | None:
    """The file a runconfig key names, inside the project. Null means Workbench's default file
    (used when it exists); a missing key means none."""
    if not data or key not in data:
        return None
    named = data[key]
    file = relative(runconfig, root)
    if named is None and not (root / default).is_file():
        return None
    if named is not None and not isinstance(named, str):
        return None  # reported by the schema check
    path = (root / (named or default)).resolve()
    if root not in path.parents:
        problems.add(runconfig, f"key '{key}' points outside the project ({named})")
        return None
    shown = f"null means Workbench's default, {default}; " if named is None else ""
    if key == "CondaDependenciesFile":
        notices.append(ConfigNotice(file, key, Disposition.MAPPED,
                                    f"{shown}its conda and pip packages are installed from PyPI into the run's "
                                    "environment (sparkjobs env show)"))
    elif named is None:
        notices.append(ConfigNotice(file, key, Disposition.MAPPED, shown.rstrip("; ")))
    return path


def _load_compute(path: Path, name: str, problems: Problems, named_by: str, environ: Mapping[str, str],
                  notices: list[ConfigNotice]) -> ComputeSettings | None:
    data = read_yaml(path, problems, named_by)
    if data is None:
        return None
    root = path.parent.parent
    file = relative(path, root)
    raw_type = data.get("type")
    if isinstance(raw_type, str) and raw_type.strip().lower() in workbench.UNSUPPORTED_TYPES:
        problems.add(path, refused_type(file, name, raw_type.strip().lower(), data))
        return None
    values = check_keys(path, data, _COMPUTE_KEYS, problems, workbench.COMPUTE_KEYS, notices, root)
    kind = values.get("type")
    if raw_type is None:
        problems.add(path, "key 'type' is required (local, spark or cluster)")
        return None
    if kind is None:
        return None
    extra, found = workbench.compute_keys(file, kind.value, data, environ, lambda message: problems.add(path, message))
    values.update(extra)
    notices += found
    for key in _REQUIRED_BY_TYPE[kind]:
        if key not in values:
            also = " (or 'address', the cluster's SSH address)" if key == "livy" else ""
            problems.add(path, f"key '{key}' is required for type '{kind.value}'{also}")
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
