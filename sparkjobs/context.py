"""What a job imports: where its run's folders are, and how to reach more storage.

``from sparkjobs import context`` is the only sparkjobs import a user's script needs. The
target (local, spark-submit cluster, HDInsight) tells the job where things are through
environment variables, so a script never learns where it runs:

=====================  ================================================================
``SPARKJOBS_RUN_ID``   the run's id
``SPARKJOBS_OUTPUTS``  the run's outputs folder: a local path on the local target, a
                       ``wasbs://``, ``abfss://`` or ``file://`` URI on cluster targets
``SPARKJOBS_SHARED``   the project's shared folder, the same forms
``SPARKJOBS_METRICS``  the local file metric points are appended to (``tracking.py``)
``SPARKJOBS_PARAMS``   the local file params are appended to
=====================  ================================================================

``log_metric``, ``log_metrics`` and ``log_param`` record what the script measured and chose, on
the driver; the run record gets the last value of each metric and every param, and the run
store keeps every metric's whole series. (Executors do not see these variables: log from the
driver.)

Outside a sparkjobs run (bare ``spark-submit train.py``) the functions fall back to
``./outputs`` and ``~/.sparkjobs/share/default/<cwd name>/`` so the script still runs.

This module is shipped to clusters where sparkjobs is not installed, so it imports only the
standard library, and never pyspark at import time (it only duck-types the session it is given).
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Any

__all__ = [
    "attach_storage", "is_cluster", "log_metric", "log_metrics", "log_param", "outputs_path", "run_id", "shared_path",
]  # fmt: skip

ENV_RUN_ID = "SPARKJOBS_RUN_ID"
ENV_OUTPUTS = "SPARKJOBS_OUTPUTS"
ENV_SHARED = "SPARKJOBS_SHARED"
ENV_METRICS = "SPARKJOBS_METRICS"
ENV_PARAMS = "SPARKJOBS_PARAMS"
#: What Azure ML Workbench scripts read; honoured so that such scripts keep their shared folder.
ENV_AZUREML_SHARED = "AZUREML_NATIVE_SHARE_DIRECTORY"

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(\$root|[a-z0-9][a-z0-9-]{1,61}[a-z0-9])$")


def run_id() -> str | None:
    """The id of the current sparkjobs run, or None when the script runs outside sparkjobs."""
    return _env(ENV_RUN_ID)


def is_cluster() -> bool:
    """True when the run's folders are URIs, i.e. the driver may not share a disk with you.

    Cluster targets give URIs (``wasbs://``, ``abfss://``, ``file://``); the local target and a
    bare ``spark-submit`` give local paths. A script can use this to choose between plain
    ``open()`` and Spark writers for its results.
    """
    location = _env(ENV_OUTPUTS)
    return location is not None and _is_uri(location)


def outputs_path(relative: str = "") -> str:
    """The run's outputs folder, or ``relative`` inside it: what lands in the run's history.

    With no argument the result names the folder and ends with a separator. A local folder is
    created if missing, so ``open(outputs_path("model.pkl"), "wb")`` works at once (the
    parents of ``relative`` are not). On cluster targets this is a URI for Spark writers
    (``df.write.parquet(outputs_path("scores"))``); files written with plain Python to
    ``./outputs`` are copied to the same place when the script ends.
    """
    base = _env(ENV_OUTPUTS) or os.path.abspath("outputs")
    return _join(_ensure_local_dir(base), relative)


def shared_path(relative: str = "") -> str:
    """The project's shared folder, or ``relative`` inside it: kept across runs, not per run.

    Falls back to ``AZUREML_NATIVE_SHARE_DIRECTORY`` (as Azure ML Workbench scripts expect),
    then to ``~/.sparkjobs/share/default/<name of the current folder>/``. A local folder is
    created if missing.
    """
    base = _env(ENV_SHARED) or _env(ENV_AZUREML_SHARED) or _default_shared()
    return _join(_ensure_local_dir(base), relative)


def log_metric(name: str, value: Any, step: int | None = None) -> None:
    """Record one point of the metric ``name``; log it again for a series (a chart).

    ``value`` is a number (NaN and the infinities are kept as such) or a short text. ``step``
    is a whole number 0 or more; by default one more than the metric's last step, from 0. A bad
    name or value raises ValueError or TypeError saying why; limits are in ``tracking.py``.
    """
    _recorder().log_metric(name, value, step)


def log_metrics(metrics: dict[str, Any], step: int | None = None) -> None:
    """``log_metric`` for each name and value of ``metrics``, at the same ``step``."""
    if not isinstance(metrics, dict):
        raise TypeError(f"log_metrics takes a dict of names and values, not {type(metrics).__name__}.")
    for name, value in metrics.items():
        log_metric(name, value, step)


def log_param(name: str, value: Any) -> None:
    """Record a param of this run: text, a number, true/false, None, or a list or dict of those.

    A param is logged once: the same value again is fine, another value is a ValueError.
    """
    _recorder().log_param(name, value)


_RECORDERS: dict[tuple[str | None, str | None], Any] = {}


def _recorder() -> Any:
    """The run's recorder; outside a run one that checks and warns but writes nothing."""
    from .tracking import Recorder  # the tracking module is only needed by scripts that log

    key = (_env(ENV_METRICS), _env(ENV_PARAMS))
    if key not in _RECORDERS:
        _RECORDERS[key] = Recorder(*key)
    return _RECORDERS[key]


def attach_storage(
    spark: Any,
    account: str,
    key: str | None = None,
    sas: str | None = None,
    container: str | None = None,
    *,
    dfs: bool = False,
    overwrite: bool = False,
) -> None:
    """Let this Spark application read and write one more Azure storage account.

    Give exactly one of ``key`` (the account key, any container) or ``sas`` (a container SAS
    token, which needs ``container``). ``dfs=True`` targets ``abfss://`` (Data Lake Gen2) with
    an account key; ABFS takes SAS tokens only through a token provider class, so ``sas`` with
    ``dfs`` is refused. ``container`` is ignored with ``key``.

    The secret is set on the running context's Hadoop configuration at run time, not as Spark
    conf, so neither Livy's request log nor the Spark UI's environment page records it; it is
    never printed. Set it before the first access to that account: Hadoop caches a filesystem
    per account once it has been used.

    An existing value is kept unless ``overwrite=True`` (a warning names the setting, never its
    value). The cluster's own storage is often configured with an encrypted key and a key
    provider, which a plain key written over it would break.

    ``spark`` is a SparkSession or a SparkContext; pyspark is not imported here.
    """
    setting, secret = _storage_setting(account, key, sas, container, dfs)
    configuration = _hadoop_configuration(spark)
    if configuration.get(setting) and not overwrite:
        warnings.warn(
            f"{setting} is already set; keeping the existing value (pass overwrite=True to replace it).",
            stacklevel=2,
        )
        return
    configuration.set(setting, secret)


def _storage_setting(
    account: str, key: str | None, sas: str | None, container: str | None, dfs: bool
) -> tuple[str, str]:
    """The Hadoop key and value for one credential; messages never include the secret."""
    if not _ACCOUNT.match(account or ""):
        raise ValueError(
            f"{account!r} is not a storage account name (3-24 lowercase letters and digits); "
            "pass the account name, not its host name or URL."
        )
    if (key is None) == (sas is None):
        raise ValueError("attach_storage needs exactly one of key= or sas=.")
    if key is not None:
        if not key:
            raise ValueError(f"The account key given for {account} is empty.")
        host = "dfs" if dfs else "blob"
        return f"fs.azure.account.key.{account}.{host}.core.windows.net", key
    if dfs:
        raise ValueError(
            "abfss:// takes SAS tokens only through a SAS token provider class; "
            "use key= with dfs=True, or sas= with wasbs://."
        )
    if not container or not _CONTAINER.match(container):
        raise ValueError(f"sas= needs container= set to a container name of {account} (got {container!r}).")
    token = (sas or "").lstrip("?")
    if not token:
        raise ValueError(f"The SAS token given for {account}/{container} is empty.")
    return f"fs.azure.sas.{container}.{account}.blob.core.windows.net", token


def _hadoop_configuration(spark: Any) -> Any:
    """The JVM Hadoop Configuration behind a SparkSession or SparkContext."""
    context = getattr(spark, "sparkContext", spark)
    jsc = getattr(context, "_jsc", None)
    if jsc is None:
        raise ValueError("attach_storage needs a running SparkSession or SparkContext (was it stopped?).")
    return jsc.hadoopConfiguration()


def _env(name: str) -> str | None:
    """An environment variable, with empty meaning unset (as a shell ``export X=`` intends)."""
    return os.environ.get(name) or None


def _is_uri(location: str) -> bool:
    return bool(_URI.match(location))


def _default_shared() -> str:
    project = os.path.basename(os.path.abspath(os.getcwd())) or "root"
    return os.path.join(os.path.expanduser("~"), ".sparkjobs", "share", "default", project)


def _ensure_local_dir(base: str) -> str:
    """Create a local folder (URIs are left alone: object stores have no folders to create)."""
    if not _is_uri(base):
        os.makedirs(base, exist_ok=True)
    return base


def _join(base: str, relative: str) -> str:
    """``relative`` (a POSIX path) inside the folder ``base``, which may be a path or a URI.

    The folder form ends with a separator, and empty or ``.`` parts are dropped, so the join
    never produces ``//``. Absolute paths and ``..`` are refused: they would leave the folder.
    """
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if relative.startswith("/") or ".." in parts:
        raise ValueError(f"{relative!r} must be a relative path inside the folder, without '..'.")
    sep = "/" if _is_uri(base) else os.sep
    folder = base if base.endswith(("/", sep)) else base + sep
    if not parts:
        return folder
    joined = folder + sep.join(parts)
    return joined + sep if relative.endswith("/") else joined
