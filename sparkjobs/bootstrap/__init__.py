"""The driver-side program a submitter ships, and the runtime zip that goes with it.

``driver.py`` is what spark-submit (or Livy) runs as the application's main file instead of the
user's script: a short entry point into this package (``launch.py`` describes the launch spec
and the steps). sparkjobs is not installed on clusters, so this package and what a job imports,
``from sparkjobs import context``, travel in the runtime zip built here and shipped in
``pyFiles``; all of it imports only the standard library (and pyspark, lazily).

Modules: ``spec`` (the launch spec and its locations), ``console`` (the bootstrap's messages),
``hadoop`` (storage I/O through Spark's JVM), ``snapshot`` (making the snapshot the working
folder), ``drivelog`` (the tee into the driver log), ``script`` and ``tracebacks`` (running the
script and printing how it failed), ``outputs`` (copying ./outputs), ``logged`` (the metrics and
params files), ``launch`` (the steps).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from io import BytesIO
from pathlib import Path

__all__ = ["BOOTSTRAP_PATH", "RUNTIME_MODULES", "WORKBENCH_PATH", "build_runtime_zip"]

#: The file to pass to spark-submit (or as Livy's ``file``, once uploaded).
BOOTSTRAP_PATH: Path = Path(__file__).resolve().with_name("driver.py")

_PACKAGE = Path(__file__).resolve().parent.parent
#: The folder that holds sparkjobs' stand-in for Azure ML Workbench's ``azureml.logging``: put on
#: a local job's PYTHONPATH, and at the top of the runtime zip, never installed as ``azureml``.
WORKBENCH_PATH: Path = _PACKAGE / "_workbench"
#: The files of the runtime zip, as archive names: what a job imports, and the bootstrap's modules
#: (all but driver.py, which travels as the batch's file). All import only the standard library.
RUNTIME_MODULES: tuple[str, ...] = (
    "sparkjobs/__init__.py",
    "sparkjobs/context.py",
    "sparkjobs/tracking.py",
    "azureml/__init__.py",
    "azureml/logging.py",
    *(f"sparkjobs/bootstrap/{path.name}" for path in sorted(Path(__file__).resolve().parent.glob("*.py")) if path.name != "driver.py"),
)

# Fixed metadata makes the bytes depend on the sources alone, so the zip can be stored and
# uploaded once per content (its digest is its name) rather than once per run.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_MODE = 0o644 << 16


def build_runtime_zip(dest: Path) -> Path:
    """Write the runtime zip and return its path.

    ``dest`` is either the zip's path or an existing folder; in a folder the zip is named
    ``sparkjobs-runtime-<first 16 hex digits of its sha256>.zip``, and an existing file of
    that name is reused, since the name already proves its content. Writing goes through a
    temp file and a rename, so a reader never sees half a zip.
    """
    data = _runtime_zip_bytes()
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / f"sparkjobs-runtime-{hashlib.sha256(data).hexdigest()[:16]}.zip"
        if dest.is_file():
            return dest
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".runtime-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)  # leave no temp file behind, whatever stopped the write; then re-raise
        raise
    return dest


def _runtime_zip_bytes() -> bytes:
    """The zip's bytes, built in memory: a few small files, fixed order and timestamps."""
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in RUNTIME_MODULES:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = _MODE
            source = WORKBENCH_PATH / name if name.startswith("azureml/") else _PACKAGE.parent / name
            archive.writestr(info, source.read_bytes())
    return buffer.getvalue()
