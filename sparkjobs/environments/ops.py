"""``sparkjobs env build`` and ``env show``, as the service runs them: build ahead of a run, or
say what a run configuration's environment is."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..config import load_run_settings
from ..errors import ConfigError
from ..runs import RunRepository
from . import BuiltEnvironment
from .build import environment_for, known_environment, plan_for, store_environment

if TYPE_CHECKING:
    from ..service import SparkJobs

__all__ = ["EnvironmentInfo", "build", "show"]


@dataclass(frozen=True)
class EnvironmentInfo:
    runconfig: str
    environment: BuiltEnvironment
    run_store: str
    stored_bytes: int = 0  # what this call uploaded to the run store (0: it was there)
    shipped_bytes: int = 0  # what it uploaded to the target's storage, where the target has one

    def to_json(self) -> dict[str, Any]:
        env = self.environment
        return {
            "runconfig": self.runconfig,
            "digest": env.digest,
            "source": env.source,
            "python_version": env.python_version,
            "platform": env.platform,
            "packages": [{"name": p.name, "version": p.version, "sha256": p.sha256} for p in env.packages],
            "archive": str(env.archive),
            "archive_bytes": env.archive.stat().st_size,
            "unpacked": str(env.unpacked),
            "run_store": self.run_store,
            "stored_bytes": self.stored_bytes,
            "shipped_bytes": self.shipped_bytes,
        }


def build(service: "SparkJobs", project_dir: Path, config: str, say: Callable[[str], None]) -> EnvironmentInfo:
    """Resolve the declaring file again (a run reuses what was resolved for the same content),
    build what changed, keep it in the run store, and upload it where the target needs it."""
    settings = load_run_settings(project_dir, config, service.environ)
    if plan_for(settings) is None:
        raise ConfigError(_nothing_declared(config))
    if not settings.builds_environment:
        raise ConfigError(f"sparkjobs builds no environment for aml_config/{config}.runconfig, because "
                          f"{settings.unbuilt_because()}; change that to build one.")
    environment = environment_for(settings, service.home, say, refresh=True)
    if environment is None:
        raise ConfigError(f"{plan_for(settings).source} declares no package to install.")  # type: ignore[union-attr]
    store = service.history_store(settings.project)
    stored = store_environment(environment, store)
    shipped = 0
    # The shipping side (issue 12, item 3) gives targets with storage of their own (spark with
    # storage, cluster) an ``upload_environment``; the others run from the local copy.
    from ..targets import make_target

    upload = getattr(make_target(settings.compute, service.environ), "upload_environment", None)
    if upload is not None:
        shipped = int(upload(settings, environment) or 0)
    return EnvironmentInfo(config, environment, store.location, stored.uploaded_bytes, shipped)


def show(service: "SparkJobs", project_dir: Path, config: str) -> EnvironmentInfo:
    """The environment a run of ``config`` would use now; nothing is built."""
    settings = load_run_settings(project_dir, config, service.environ)
    plan = plan_for(settings)
    if plan is None:
        raise ConfigError(_nothing_declared(config))
    environment = known_environment(settings, service.home)
    if environment is None:
        raise ConfigError(f"The environment of {plan.source} for Python {plan.python} on {plan.platform} is not built "
                          f"yet on this machine; build it with 'sparkjobs env build -c {config}'.")
    return EnvironmentInfo(config, environment, RunRepository(service.history_store(settings.project)).store.location)


def _nothing_declared(config: str) -> str:
    return (f"aml_config/{config}.runconfig declares no Python dependencies; name a pip requirements file in "
            "RequirementsFile, or Workbench's conda file in CondaDependenciesFile.")
