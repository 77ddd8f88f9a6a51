"""Python dependencies that travel with a run: one content-addressed archive per resolved set.

The archive's root is an import root (``pip install --target`` layout), so the same bytes serve
every target: unpacked and put on ``PYTHONPATH`` locally, ``spark.archives`` on a Spark cluster,
and Livy ``archives`` on YARN. Issue 12 builds it; this module holds the models both sides share.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ARCHIVE_ALIAS", "DEFAULT_PLATFORM", "BuiltEnvironment", "ResolvedPackage"]

#: The platform tag wheels are resolved for: what HDInsight and most Spark clusters run.
DEFAULT_PLATFORM = "manylinux2014_x86_64"
#: The folder name the archive is unpacked under in a Spark or YARN working directory
#: (``archive.tar.gz#sparkjobs_env``).
ARCHIVE_ALIAS = "sparkjobs_env"


@dataclass(frozen=True)
class ResolvedPackage:
    name: str  # the distribution's canonical name
    version: str
    sha256: str  # of the wheel it was installed from


@dataclass(frozen=True)
class BuiltEnvironment:
    """An environment ready to ship: its digest covers the packages, the platform and the Python."""

    digest: str
    python_version: str  # "3.11": the interpreter the wheels were chosen for
    platform: str
    packages: tuple[ResolvedPackage, ...]
    archive: Path  # a local .tar.gz whose root is the import root
    unpacked: Path  # the same files, unpacked locally, for the local target and the driver
    source: str = ""  # the declaring file, relative to the project, for messages
