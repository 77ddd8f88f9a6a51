"""The files the script's metrics and params go to (``sparkjobs/tracking.py``), and their way to
storage: the same as the driver log's, every ``LOG_INTERVAL_SECONDS`` and once more at the end,
so what a failing or killed script logged is kept as far as it got."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..context import ENV_METRICS, ENV_PARAMS
from .console import brief, say
from .drivelog import LOG_INTERVAL_SECONDS, _Every
from .hadoop import Spark
from .spec import LaunchSpec, local_path

__all__ = ["logged_files"]


class _Shipper:
    """Uploads each local file that changed since its last upload; says once if one fails."""

    def __init__(self, spark: Spark, pairs: list[tuple[str, str]]) -> None:
        self._spark, self._pairs = spark, pairs
        self._sent: dict[str, tuple[int, int]] = {}
        self._warned = False

    def __call__(self) -> None:
        for local, uri in self._pairs:
            try:
                stat = os.stat(local)
            except FileNotFoundError:
                continue  # nothing logged yet
            if self._sent.get(local) == (stat.st_size, stat.st_mtime_ns):
                continue
            try:
                self._spark.upload(local, uri)
                self._sent[local] = (stat.st_size, stat.st_mtime_ns)
            except Exception as exc:  # Py4JJavaError: storage trouble must not kill the run
                if not self._warned:
                    self._warned = True
                    say(f"could not save the logged metrics to {uri}: {brief(exc)}")


@contextlib.contextmanager
def logged_files(spec: LaunchSpec, spark: Spark, work: str) -> Iterator[None]:
    """Point the script's context at the run's metrics and params files while the block runs.

    A plain path (the local and spark targets: the driver is on the submitter's machine) is
    written in place; a URI (cluster targets) gets a local file in ``work``, copied there.
    """
    pairs = []
    for variable, uri, name in ((ENV_METRICS, spec.metrics_uri, "metrics.jsonl"), (ENV_PARAMS, spec.params_uri, "params.jsonl")):
        if not uri:
            continue
        if local_path(uri) == uri:  # a plain path, no scheme
            os.environ[variable] = os.path.abspath(uri)
        else:
            os.environ[variable] = os.path.join(work, name)
            pairs.append((os.environ[variable], uri))
    if not pairs:
        yield
        return
    ship = _Shipper(spark, pairs)
    periodic = _Every(LOG_INTERVAL_SECONDS, ship)
    periodic.start()
    try:
        yield
    finally:
        periodic.stop()
        ship()
