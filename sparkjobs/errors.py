"""The one exception tree of the sparkjobs package.

::

    SparkJobsError                 every expected failure; str() is a sentence a user can act on
    ├── ConfigError                a .compute/.runconfig/credentials problem (exit 2)
    ├── SnapshotError              the project cannot be snapshotted (cap exceeded, unreadable file)
    ├── StorageError               a run store or blob container cannot be used
    │   ├── ArtifactTransferError  some artifacts could not be uploaded or downloaded
    │   └── RunRecordError         a run record cannot be read, or is not a run record's shape
    ├── RunNotFound                no run with that id in the store
    ├── UnsafePathError            a key or download path would escape its root
    ├── EnvironmentBuildError      the run's Python dependencies cannot be resolved or installed
    └── TargetError                a compute target could not start or watch a job
        └── JobLost                the target no longer knows a run's job, which left no word of
                                   how it ended: the run is recorded as ended with ``outcome``

Built-in ``FileNotFoundError`` is what stores raise for a missing key, as fsspec does,
so callers can use ordinary Python idioms.
"""
from __future__ import annotations

__all__ = [
    "SparkJobsError",
    "ConfigError",
    "SnapshotError",
    "StorageError",
    "ArtifactTransferError",
    "RunRecordError",
    "RunNotFound",
    "UnsafePathError",
    "EnvironmentBuildError",
    "TargetError",
    "JobLost",
]


class SparkJobsError(Exception):
    """Base of every error sparkjobs raises on purpose."""

    exit_code = 2


class ConfigError(SparkJobsError):
    """Configuration is missing or invalid; the message names the file and key."""


class SnapshotError(SparkJobsError):
    """The project folder cannot be turned into a snapshot."""


class StorageError(SparkJobsError):
    """A store could not be reached or used."""


class ArtifactTransferError(StorageError):
    """Some files failed to transfer.

    ``failed`` maps each key to its reason; ``succeeded`` holds what did transfer, so a caller
    can still record it (nothing is dropped silently).
    """

    def __init__(self, message: str, failed: dict[str, str], succeeded: list | None = None) -> None:
        super().__init__(message)
        self.failed = dict(failed)
        self.succeeded = list(succeeded or [])


class RunRecordError(StorageError):
    """A run record is cut short, not JSON, or has a field of the wrong type; the message names
    the record and what is wrong with it."""


class RunNotFound(SparkJobsError):
    """No run with the given id exists in the store."""


class UnsafePathError(SparkJobsError):
    """A key or path would escape the folder it must stay in."""


class EnvironmentBuildError(SparkJobsError):
    """pip cannot resolve or install the run's declared dependencies for the target."""


class TargetError(SparkJobsError):
    """A compute target failed to start or to watch a job."""


class JobLost(TargetError):
    """A detached run's job is unknown to its target now (Livy restarted or forgot it) and left
    no exit record: it can never be watched again. ``outcome`` is the reason to record it with,
    so that the run does not stay ``running`` for ever; the message says that it was recorded."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome
