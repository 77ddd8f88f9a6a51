"""The frozen settings a run configuration resolves to (config.py loads and checks them)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from .project_config import ProjectSettings
from .workbench_keys import ConfigNotice, Disposition

__all__ = ["TargetType", "Framework", "ComputeSettings", "SparkDependencies", "ProjectSettings", "RunSettings",
           "DEFAULT_SHARE_DIR", "DEFAULT_START_TIMEOUT_MINUTES"]

DEFAULT_SHARE_DIR = "~/.sparkjobs/share/"
#: How long a cluster batch may wait for YARN to start it before sparkjobs deletes it.
DEFAULT_START_TIMEOUT_MINUTES = 30.0


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
    python_location: str | None = None  # Workbench's pythonLocation: the job's Python (None: sparkjobs')
    spark_submit_location: str | None = None  # Workbench's sparkSubmitLocation (None: pyspark's or SPARK_HOME's)
    user_managed_environment: bool = False  # Workbench's userManagedEnvironment: prepare no environment


@dataclass(frozen=True)
class SparkDependencies:
    configuration: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    packages: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    file: str = ""  # the dependencies file, relative to the project, for messages


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
    #: What each key of those files resolved to (honoured, mapped or ignored, and why).
    notices: tuple[ConfigNotice, ...] = ()
    #: Workbench's CondaDependenciesFile (relative POSIX path in the project): built like RequirementsFile.
    conda_dependencies_file: str | None = None
    #: A pip requirements file (relative POSIX path in the project): the run's Python dependencies.
    requirements_file: str | None = None
    #: Workbench's PrepareEnvironment as the runconfig says it (the compute's userManagedEnvironment
    #: can still turn the build off: builds_environment).
    prepare_environment: bool = True

    @property
    def builds_environment(self) -> bool:
        """Whether the declared Python dependencies are built for this run."""
        return self.prepare_environment and not self.compute.user_managed_environment

    def unbuilt_because(self) -> str:
        """Why nothing is built (builds_environment is False), naming each file that says so."""
        reasons = []
        if not self.prepare_environment:
            reasons.append(f"PrepareEnvironment is false in aml_config/{self.name}.runconfig")
        if self.compute.user_managed_environment:
            reasons.append(f"userManagedEnvironment is true in aml_config/{self.compute.name}.compute")
        return " and ".join(reasons)

    @property
    def ignored(self) -> tuple[ConfigNotice, ...]:
        """The notices a run prints: keys accepted but without effect."""
        return tuple(n for n in self.notices if n.disposition is Disposition.IGNORED)
