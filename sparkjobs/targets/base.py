"""The Target seam: local, spark and cluster are peers behind ``submit(plan) -> Execution``."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from ..config import RunSettings
from ..runs import RunStatus
from ..snapshot import Snapshot
from ..storage.base import Store
from ..storage.uris import StorageLocation

if TYPE_CHECKING:
    from ..run_inputs import RunInputs
    from ..environments import BuiltEnvironment

__all__ = ["SubmitPlan", "Outcome", "Execution", "Target", "LineSink", "JobLocations"]

LineSink = Callable[[str], None]
"""Receives each line of job output (without its newline) as it arrives."""


@dataclass(frozen=True)
class JobLocations:
    """Where a job's outputs and shared folder are, as the job sees them: local paths on the
    local target, wasbs://, abfss:// or file:// URIs on clusters. Both end with a separator."""

    outputs: str
    shared: str


@dataclass(frozen=True)
class SubmitPlan:
    """Everything a target needs to start one run; built once by the service."""

    run_id: str
    settings: RunSettings
    snapshot: Snapshot
    script: str  # relative POSIX path inside the snapshot
    args: tuple[str, ...]
    env: Mapping[str, str]  # what the job sees (SPARKJOBS_*, AZUREML_*, EnvironmentVariables)
    spark_conf: Mapping[str, str]  # merged spark-conf/, dependencies and compute conf; no secrets
    workdir: Path  # a private scratch folder for this run, outside the project
    hadoop_secrets: Mapping[str, str] = field(default_factory=dict)  # set at run time, never as conf
    # Every secret value of the run (credentials.known_secrets and the Hadoop secrets): masked in
    # all the run prints or stores.
    masked: tuple[str, ...] = ()
    # Earlier runs' artifacts the arguments name (run:ID/outputs/x): ``args`` holds what they
    # resolved to; this keeps them as typed, for the record, and what to fetch before the start.
    inputs: "RunInputs | None" = None
    # The run's Python dependencies, built and stored before the start; None when it declares none.
    environment: "BuiltEnvironment | None" = None


@dataclass(frozen=True)
class Outcome:
    status: RunStatus
    exit_code: int | None
    error: str | None = None
    local_outputs: Path | None = None  # a folder the service uploads as artifacts, if any
    details: Mapping[str, str] = field(default_factory=dict)
    # Cluster targets: the job wrote its outputs straight to this store under runs/<id>/outputs/.
    outputs_store: Store | None = None
    # SHA-256 of outputs the job already hashed (path relative to outputs/), so they need not
    # be downloaded again to be recorded.
    output_digests: Mapping[str, str] = field(default_factory=dict)
    ended_at: str | None = None  # when known better than "now" (a run settled after the fact)


class Execution(abc.ABC):
    """A job that has been started. ``stream`` and ``wait`` block; ``kill`` may come from
    another thread (Ctrl-C handling)."""

    details: Mapping[str, str] = {}
    #: True when the job keeps running without sparkjobs watching (a Livy batch), so the
    #: user may detach and later reattach; a local process is always killed instead.
    detachable: bool = False

    @abc.abstractmethod
    def stream(self, sink: LineSink) -> None:
        """Deliver output lines to sink until the job ends."""

    @abc.abstractmethod
    def wait(self) -> Outcome: ...

    @abc.abstractmethod
    def kill(self) -> None:
        """Stop the job gracefully; returns once it has stopped or been killed."""

    def kill_now(self) -> None:
        """Stop at once (the user asked twice); may be called from a signal handler."""
        self.kill()


class Target(abc.ABC):
    detachable: bool = False  # see Execution.detachable
    @abc.abstractmethod
    def locations(self, settings: RunSettings, workdir: Path, run_id: str) -> JobLocations:
        """Where this run's outputs and shared folder are, as the job will see them."""

    def hadoop_secrets(self, settings: RunSettings) -> dict[str, str]:
        """Hadoop keys (storage account keys, SAS) the job needs, attached at run time."""
        return {}

    def job_storage(self, settings: RunSettings) -> tuple[StorageLocation, Store] | None:
        """The storage the job reads through Hadoop, and a store to write into it; None when
        the job reads this machine's files (then run: arguments resolve to local paths)."""
        return None

    @abc.abstractmethod
    def submit(self, plan: SubmitPlan) -> Execution: ...

    def describe(self, plan: SubmitPlan) -> dict:
        """What would be sent, for --dry-run, with secrets as ***."""
        return {}
