"""How a run's Python dependencies (``plan.environment``) reach the driver and the executors.

One archive serves every target (``environments``): its root is an import root, so shipping
it means putting a folder on the Python path, never swapping the interpreter.

- ``local``: the unpacked copy on this machine goes on ``PYTHONPATH`` of the spark-submit
  process, which the driver and local Spark's Python workers inherit.
- ``spark``: the archive goes in ``spark.archives`` as ``<archive>#sparkjobs_env``; each executor
  unpacks it in its working folder and gets ``./sparkjobs_env`` on ``spark.executorEnv.PYTHONPATH``;
  the driver (client mode, on this machine) uses the unpacked copy, as on ``local``.
- ``cluster``: the archive is uploaded to storage once per digest and given in Livy's
  ``archives``; YARN unpacks it in every container, and both the application master (the
  driver) and the executors get ``./sparkjobs_env`` on ``PYTHONPATH``.

In every case the bootstrap gets ``environment`` in the launch spec: it checks the driver's
Python against the one the wheels were built for, and puts the folder on ``sys.path`` after the
project's own folders. Project files win over a package of the same name (as for
``python script.py``, whose folder comes first); on executors Spark puts ``--py-files`` and
``addPyFile`` (the project's modules) ahead of ``PYTHONPATH`` too. A ``PYTHONPATH`` the user set in
conf comes before the environment's, since it is an explicit choice.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..environments import ARCHIVE_ALIAS, BuiltEnvironment

__all__ = ["EXECUTOR_PATH", "launch_environment", "with_archive", "with_python_path"]

#: Where an environment shipped as an archive is on a cluster node: YARN and Spark unpack
#: ``URI#sparkjobs_env`` as this folder in the container's (executor's) working folder.
EXECUTOR_PATH = f"./{ARCHIVE_ALIAS}"


def launch_environment(environment: BuiltEnvironment, path: str) -> dict[str, str]:
    """The launch spec's ``environment``: where the driver finds it, and what it was built for."""
    return {"path": path, "python": environment.python_version, "digest": environment.digest}


def with_python_path(conf: Mapping[str, str], keys: tuple[str, ...], folder: str) -> dict[str, str]:
    """``conf`` with ``folder`` added to the PYTHONPATH each of ``keys`` sets, after the user's."""
    merged = dict(conf)
    for key in keys:
        present = [part for part in merged.get(key, "").split(":") if part]
        merged[key] = ":".join([*present, folder] if folder not in present else present)
    return merged


def with_archive(conf: Mapping[str, str], uri: str) -> dict[str, str]:
    """``conf`` with ``URI#sparkjobs_env`` added to ``spark.archives``, after any the user gave."""
    merged = dict(conf)
    entry = f"{uri}#{ARCHIVE_ALIAS}"
    present = [part for part in merged.get("spark.archives", "").split(",") if part.strip()]
    merged["spark.archives"] = ",".join([*present, entry] if entry not in present else present)
    return merged
