"""A run's environment, built once per distinct content and reused after that.

The warm path reads the declaring file's bytes, looks its key up and checks the run store's
marker: no parsing, no pip, no upload. Only a new declaration is parsed, resolved by pip,
packed and stored (``_build``), and pip's and the packer's modules are loaded for it alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..config import RunSettings, TargetType
from ..errors import ConfigError
from ..storage.base import Store
from ..wording import count, size
from . import DEFAULT_PLATFORM, BuiltEnvironment
from .cache import EnvironmentCache
from .store import EnvironmentStore, StoredEnvironment

__all__ = ["EnvironmentPlan", "plan_for", "environment_for", "known_environment", "store_environment"]

_KEY_LAYOUT = "1"
Say = Callable[[str], None]


@dataclass(frozen=True)
class EnvironmentPlan:
    """What to build: the declaring file and the interpreter and platform to build it for."""

    source: str  # the declaring file, relative to the project
    kind: str  # "requirements" or "conda"
    content: bytes
    python: str
    platform: str
    python_notice: str | None = None  # said when the Python was not named by the compute

    @property
    def key(self) -> str:
        parts = [_KEY_LAYOUT, self.kind, self.python, self.platform, hashlib.sha256(self.content).hexdigest()]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def plan_for(settings: RunSettings) -> EnvironmentPlan | None:
    """None when the run declares no dependencies."""
    declared = [(f, kind) for f, kind in ((settings.requirements_file, "requirements"),
                                          (settings.conda_dependencies_file, "conda")) if f]
    if not declared:
        return None
    if len(declared) > 1:
        raise ConfigError(f"aml_config/{settings.name}.runconfig names both RequirementsFile and "
                          "CondaDependenciesFile; keep one of them.")
    source, kind = declared[0]
    try:
        content = (settings.project.root / source).read_bytes()
    except OSError as exc:
        raise ConfigError(f"The dependencies file {source} cannot be read ({exc.strerror or exc}).") from None
    python, notice = _python(settings)
    return EnvironmentPlan(source, kind, content, python, _platform(settings), notice)


def _python(settings: RunSettings) -> tuple[str, str | None]:
    named = settings.compute.python_version
    if named:
        return named, None
    client = f"{sys.version_info.major}.{sys.version_info.minor}"
    if settings.compute.type is TargetType.LOCAL:
        return client, None  # the local target runs this very interpreter
    return client, (f"aml_config/{settings.compute.name}.compute names no pythonVersion, so the environment is built for "
                    f"this machine's Python {client}; set pythonVersion to the cluster's (HDInsight 5.1 runs 3.8).")


def _platform(settings: RunSettings) -> str:
    if settings.compute.type is TargetType.LOCAL and (sys.platform, os.uname().machine) != ("linux", "x86_64"):
        import sysconfig  # a local job runs on this machine's platform (macOS, ARM): its own wheels

        return sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return DEFAULT_PLATFORM


def known_environment(settings: RunSettings, home: Path) -> BuiltEnvironment | None:
    """The run's environment if this machine has built it already; nothing is built."""
    plan = plan_for(settings)
    if plan is None or not settings.builds_environment:
        return None
    cache = EnvironmentCache(home)
    known = cache.known(plan.key)
    return cache.load(known["digest"]) if known else None


def environment_for(settings: RunSettings, home: Path, say: Say, *, refresh: bool = False) -> BuiltEnvironment | None:
    """The run's environment, built or taken from this machine's cache (the caller stores it
    with ``store_environment``). ``refresh`` resolves the file again even when its content is known."""
    plan = plan_for(settings)
    if plan is None:
        return None
    if not settings.builds_environment:
        return None  # the declaring key's notice says so, once per run (config.py's _unbuilt)
    if plan.python_notice:
        say(plan.python_notice)
    cache = EnvironmentCache(home)
    known = None if refresh else cache.known(plan.key)
    environment = cache.load(known["digest"]) if known else None
    if environment is None:
        environment, notices = _build(plan, settings.project.root, cache, say)
    else:
        notices = known.get("notices") or []
    for notice in notices:
        say(notice)
    # Another declaration may have resolved to the same packages first: name this run's own file.
    return replace(environment, source=plan.source) if environment is not None else None


def store_environment(environment: BuiltEnvironment, store: Store) -> StoredEnvironment:
    """Keep the environment in a store (a run store, or a cluster's storage) once."""
    return EnvironmentStore(store).save(environment)


def _build(plan: EnvironmentPlan, root: Path, cache: EnvironmentCache, say: Say) -> tuple[BuiltEnvironment | None, list[str]]:
    from .declare import read_conda, read_requirements
    from .pack import environment_digest, pack, prune
    from .resolve import install
    from .store import manifest_of

    reader = read_requirements if plan.kind == "requirements" else read_conda
    declared = reader(root / plan.source, plan.source)
    notices = list(declared.notices)
    if declared.python and declared.python != plan.python:
        notices.append(f"{plan.source} asks for python={declared.python}; it is ignored, and the environment is built "
                       f"for the target's Python {plan.python}.")
    if not declared.requirements:
        for notice in notices:
            say(notice)
        say(f"{plan.source} declares no package to install; the run has no environment.")
        return None, []
    staging = cache.staging()
    try:
        say(f"Resolving {plan.source} for Python {plan.python} on {plan.platform}...")
        packages = install(declared.requirements, plan.python, plan.platform, staging / "unpacked", source=plan.source)
        prune(staging / "unpacked")
        digest = environment_digest(packages, plan.platform, plan.python)
        environment = cache.load(digest)
        if environment is None:
            archive_sha256 = pack(staging / "unpacked", staging / "archive.tar.gz")
            entry = cache.entry(digest)
            environment = BuiltEnvironment(digest, plan.python, plan.platform, packages, entry / "archive.tar.gz",
                                           entry / "unpacked", plan.source)
            (staging / "manifest.json").write_text(json.dumps(manifest_of(environment, archive_sha256), indent=1))
            cache.install(staging, digest)
            say(f"Environment {digest[:12]}: built {count(len(packages), 'package')} "
                f"({', '.join(f'{p.name}=={p.version}' for p in packages)}), {size(environment.archive.stat().st_size)}.")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    cache.remember(plan.key, environment.digest, notices)
    return environment, notices
