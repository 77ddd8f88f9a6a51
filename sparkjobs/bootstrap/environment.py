"""The run's Python dependencies on the driver: check the interpreter, then put them on sys.path.

The launch spec's ``environment`` names a folder whose root is an import root (a
``pip install --target`` tree): on the local and spark targets the unpacked copy on this
machine, on a cluster the archive YARN unpacked as ``sparkjobs_env`` in the container's working
folder (a relative path is taken from the folder the bootstrap started in). Wheels with native
code only load on the Python they were built for, so a driver on another major.minor stops here
with one message naming both versions, before the script can fail with an obscure ImportError.

The folder goes on ``sys.path`` after the script's folder and the snapshot root (``script.py``
puts those first), so the project's own modules win over a package of the same name, as they
would for ``python script.py``; and before the interpreter's site-packages, so a pinned version
wins over what the cluster's Python already has.
"""
from __future__ import annotations

import os
import sys

from .spec import BootstrapError, EnvironmentSpec

__all__ = ["activate", "running_python"]


def running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def activate(environment: EnvironmentSpec) -> str:
    """Check the interpreter and put the environment on sys.path; returns its absolute path."""
    here = running_python()
    if environment.python != here:
        raise BootstrapError(
            f"The run's Python dependencies (environment {environment.digest[:12]}) were built for Python "
            f"{environment.python}, but the driver runs Python {here} ({sys.executable}). Set 'pythonVersion: "
            f"\"{here}\"' in the compute file so they are built for the cluster's Python, or run with a Python "
            f"{environment.python} interpreter."
        )
    path = os.path.abspath(environment.path)
    if not os.path.isdir(path):
        raise BootstrapError(
            f"The run's Python dependencies (environment {environment.digest[:12]}) are not at {path}: the archive "
            "was not unpacked there (Spark: spark.archives; Livy: archives, as URI#sparkjobs_env)."
        )
    sys.path[:] = [path, *(entry for entry in sys.path if entry != path)]
    return path
