"""A Maven package built for one Scala version fails to load on a Spark built for another.

Scala artifacts carry their Scala version in their name (``mmlspark_2.11``), and a Spark
distribution ships its ``scala-library-2.13.x.jar``. Workbench projects name Scala 2.11
packages; a Spark 3 or 4 here uses 2.12 or 2.13. The mismatch shows up only once the job runs,
as a NoSuchMethodError deep in a stack trace, so sparkjobs says it before anything is submitted.
Only where Spark is on this machine (local and spark targets): a cluster's Scala is its own.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

__all__ = ["spark_scala_version", "scala_warnings"]

_SCALA_LIBRARY = re.compile(r"^scala-library-(\d+\.\d+)\.")
_ARTIFACT_SCALA = re.compile(r"_(2\.1[0-3])$")


def spark_scala_version(spark_home: Path) -> str | None:
    """The Scala version (``2.13``) of the Spark at spark_home, from its scala-library jar."""
    try:
        names = [path.name for path in (spark_home / "jars").iterdir()]
    except OSError:
        return None
    for name in names:
        found = _SCALA_LIBRARY.match(name)
        if found:
            return found.group(1)
    return None


def scala_warnings(packages: Iterable[str], spark_scala: str | None, file: str) -> list[str]:
    """One warning per "group:artifact:version" package built for another Scala than Spark's."""
    if spark_scala is None:
        return []
    warnings = []
    for package in packages:
        parts = package.split(":")
        artifact = parts[1] if len(parts) >= 3 else ""
        built = _ARTIFACT_SCALA.search(artifact)
        if built and built.group(1) != spark_scala:
            wanted = artifact[: built.start()] + f"_{spark_scala}"
            warnings.append(
                f"Warning: package {package} in {file} is built for Scala {built.group(1)}, but this Spark uses "
                f"Scala {spark_scala}, so it will fail to load; use a version of {wanted} instead."
            )
    return warnings
