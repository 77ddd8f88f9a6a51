"""Azure ML Workbench's keys that sparkjobs' own schema does not have, and what each becomes.

Workbench's "Experimentation Service configuration reference" defines keys for ``.compute``,
``.runconfig``, ``spark_dependencies.yml`` and ``conda_dependencies.yml``. Every one is either
honoured, mapped to what sparkjobs does, or accepted and ignored with a reason; none is refused
as unknown. Each key a configuration resolves becomes a :class:`ConfigNotice`, carried on the
run settings: a run prints the ignored ones once (``--quiet`` silences them), and
``sparkjobs config check`` prints them all.

Two things are refused, each with what to do instead: a password in a ``.compute`` file (the
project, aml_config/ included, is copied into every snapshot), and Workbench's Docker and
remote-VM targets, which sparkjobs does not run (workbench_docker.py).
"""
from __future__ import annotations

import enum
import os
import shutil
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .config_checks import Invalid, boolean, string

__all__ = ["Disposition", "ConfigNotice", "RUNCONFIG_KEYS", "COMPUTE_KEYS", "DOCKER_TYPES", "UNSUPPORTED_TYPES",
           "runconfig_keys", "compute_keys", "livy_from_address", "other_file_of"]


class Disposition(str, enum.Enum):
    HONOURED = "honoured"  # does what the key says
    MAPPED = "mapped"  # becomes sparkjobs' own equivalent
    IGNORED = "ignored"  # accepted; has no effect here, for the reason given


@dataclass(frozen=True)
class ConfigNotice:
    """What one key of one configuration file resolves to."""

    file: str  # relative POSIX path in the project
    key: str
    disposition: Disposition
    reason: str

    def line(self) -> str:
        return f"{self.file}: key '{self.key}' is {self.disposition.value}: {self.reason}"

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "key": self.key, "disposition": self.disposition.value, "reason": self.reason}


_DATA_PREP = "it chose Workbench Data Prep samples and data sources, which sparkjobs does not have; scripts read their data as written"
#: Workbench's .runconfig keys that sparkjobs' own schema (config.py) does not have.
RUNCONFIG_KEYS = ("CondaDependenciesFile", "PrepareEnvironment", "TrackedRun", "UseSampling", "DataSourceSettings",
                  "DataSourceSubstitutions")
COMPUTE_KEYS = ("address", "password", "baseDockerImage", "sharedVolumes", "nvidiaDocker", "userManagedEnvironment",
                "pythonLocation", "sparkSubmitLocation", "yarnDeployMode")
DOCKER_TYPES = ("docker", "localdocker", "remotedocker")
UNSUPPORTED_TYPES = (*DOCKER_TYPES, "remote")
_DEFAULT_COMMANDS = {"pythonLocation": "python", "sparkSubmitLocation": "spark-submit"}

Problem = Callable[[str], None]


#: Every key Workbench's reference defines, by the file it belongs in.
_ALL_KEYS = {
    "a .runconfig file": ("ArgumentVector", "Target", "EnvironmentVariables", "Framework", "SparkDependenciesFile",
                          *RUNCONFIG_KEYS),
    "a .compute file": ("type", "username", "nativeSharedDirectory", *COMPUTE_KEYS),
    "spark_dependencies.yml": ("configuration", "repositories", "packages"),
}


def other_file_of(key: str) -> str | None:
    """For a Workbench key in the wrong file, the kind of file it belongs in."""
    return next((file for file, keys in _ALL_KEYS.items() if key in keys), None)


def runconfig_keys(file: str, data: Mapping[str, Any], problem: Problem) -> tuple[dict[str, Any], list[ConfigNotice]]:
    """Values for RunSettings from Workbench's own .runconfig keys, and a notice for each."""
    values: dict[str, Any] = {}
    notices: list[ConfigNotice] = []

    def note(key: str, disposition: Disposition, reason: str) -> None:
        notices.append(ConfigNotice(file, key, disposition, reason))

    for key in ("PrepareEnvironment", "TrackedRun"):
        if data.get(key) is not None:
            try:
                values[key] = boolean(data[key])
            except Invalid as exc:
                problem(f"key '{key}' {exc} (got {data[key]!r})")
    if "PrepareEnvironment" in data:
        prepare = values.get("PrepareEnvironment", True)
        values["prepare_environment"] = prepare
        note("PrepareEnvironment", Disposition.HONOURED,
             "the run's Python dependencies are built (once per content) before it starts" if prepare
             else "no environment is prepared before the run")
    if "TrackedRun" in data:
        tracked = values.get("TrackedRun", True)
        note("TrackedRun", Disposition.HONOURED if tracked else Disposition.IGNORED,
             "every run is recorded in the run history" if tracked
             else "sparkjobs records every run in the run history; it cannot be turned off")
    values.pop("PrepareEnvironment", None)
    values.pop("TrackedRun", None)
    for key in ("UseSampling", "DataSourceSettings", "DataSourceSubstitutions"):
        if key in data:
            note(key, Disposition.IGNORED, _DATA_PREP)
    _nulls(RUNCONFIG_KEYS, data, notices, note)
    return values, notices


def compute_keys(file: str, kind: str, data: Mapping[str, Any], environ: Mapping[str, str], problem: Problem
                 ) -> tuple[dict[str, Any], list[ConfigNotice]]:
    """Values for ComputeSettings from Workbench's own .compute keys, for a compute of type
    ``kind`` (local, spark or cluster), and a notice for each."""
    values: dict[str, Any] = {}
    notices: list[ConfigNotice] = []

    def note(key: str, disposition: Disposition, reason: str) -> None:
        notices.append(ConfigNotice(file, key, disposition, reason))

    for key in ("baseDockerImage", "sharedVolumes", "nvidiaDocker"):
        if key in data:
            note(key, Disposition.IGNORED, f"it configures Docker, and this is a '{kind}' target, not a Docker one")
    password = data.get("password")
    if password not in (None, ""):
        entry = data.get("livy") or livy_from_address(data.get("address")) or "CLUSTER"
        problem(
            "key 'password' holds a password, which would be copied into every snapshot of the project (aml_config/ "
            "is always kept); delete it and set SPARKJOBS_LIVY_PASSWORD, or put it in the credentials file outside "
            "the project (SPARKJOBS_CREDENTIALS, else credentials.yaml in SPARKJOBS_HOME, ~/.sparkjobs by default) "
            f"as 'livy: {{{entry}: {{password: ...}}}}'"
        )
    elif "password" in data:
        note("password", Disposition.IGNORED, "it is empty; the password comes from SPARKJOBS_LIVY_PASSWORD or the credentials file")
    if "address" in data and data["address"] is not None:
        _address(data, kind, values, note, problem)
    if "username" in data and kind != "cluster":
        note("username", Disposition.IGNORED, f"a '{kind}' target logs in nowhere")
    if data.get("userManagedEnvironment") is not None:
        try:
            managed = boolean(data["userManagedEnvironment"])
        except Invalid as exc:
            problem(f"key 'userManagedEnvironment' {exc} (got {data['userManagedEnvironment']!r})")
        else:
            values["user_managed_environment"] = managed
            note("userManagedEnvironment", Disposition.MAPPED,
                 "the job's Python environment is yours: no environment is prepared for this target" if managed
                 else "environments are prepared as the run configuration's PrepareEnvironment says")
    for key, attribute in (("pythonLocation", "python_location"), ("sparkSubmitLocation", "spark_submit_location")):
        if data.get(key) is not None:
            _command(key, attribute, data[key], kind, environ, values, note, problem)
    if data.get("yarnDeployMode") is not None:
        _deploy_mode(data, kind, values, note, problem)
    _nulls(COMPUTE_KEYS, data, notices, note)
    return values, notices


def _nulls(keys: tuple[str, ...], data: Mapping[str, Any], notices: list[ConfigNotice], note: Callable) -> None:
    """Workbench writes null for "the default": listed too, so config check shows every key."""
    said = {n.key for n in notices}
    for key in keys:
        if key in data and data[key] is None and key not in said:
            note(key, Disposition.HONOURED, "null: the default")


def _address(data: Mapping[str, Any], kind: str, values: dict[str, Any], note: Callable, problem: Problem) -> None:
    if kind != "cluster":
        note("address", Disposition.IGNORED, f"a '{kind}' target connects to no machine")
    elif data.get("livy") is not None:
        note("address", Disposition.IGNORED, "'livy' is set, and names the Livy endpoint")
    else:
        livy = livy_from_address(data["address"])
        if livy is None:
            problem(f"key 'address' must be an HDInsight cluster address such as CLUSTER-ssh.azurehdinsight.net, "
                    f"or set 'livy' to the cluster's Livy URL (got {data['address']!r})")
        else:
            values["livy"] = livy
            note("address", Disposition.MAPPED, f"the Livy endpoint is {livy}")


def livy_from_address(address: Any) -> str | None:
    """Workbench's HDInsight ``address`` (its SSH host, CLUSTER-ssh.azurehdinsight.net; the
    cluster's own host; or an https URL) as the cluster's Livy URL."""
    if not isinstance(address, str) or not address.strip():
        return None
    text = address.strip()
    host = (urlsplit(text).hostname if "://" in text else text.split(":")[0]) or ""
    host = host.lower().rstrip(".")
    suffix = ".azurehdinsight.net"
    if not host.endswith(suffix):
        return None
    cluster = host[: -len(suffix)]
    cluster = cluster[: -len("-ssh")] if cluster.endswith("-ssh") else cluster
    if not cluster or "." in cluster:
        return None
    return f"https://{cluster}{suffix}/livy"


def _command(key: str, attribute: str, raw: Any, kind: str, environ: Mapping[str, str], values: dict[str, Any],
             note: Callable, problem: Problem) -> None:
    try:
        text = string(raw).strip()
    except Invalid as exc:
        problem(f"key '{key}' {exc}")
        return
    if kind == "cluster" and key == "sparkSubmitLocation":
        note(key, Disposition.IGNORED, "Livy runs spark-submit on the cluster")
        return
    if kind == "cluster":  # a path on the cluster's nodes, which this machine cannot check
        values[attribute] = text
        note(key, Disposition.MAPPED, f"Spark's spark.pyspark.python is {text} (a path on the cluster)")
        return
    found = shutil.which(os.path.expanduser(text), path=environ.get("PATH", ""))
    if found is None and text == _DEFAULT_COMMANDS[key]:
        # Workbench's own default names a program of its installation; sparkjobs has its own.
        note(key, Disposition.MAPPED, f"'{text}' is not on PATH, so sparkjobs uses the one it runs with")
    elif found is None:
        problem(f"key '{key}' names {text!r}, which is not an executable file or a program on PATH")
    else:
        values[attribute] = os.path.abspath(found)
        what = "the Python that runs the job (and PYSPARK_PYTHON)" if key == "pythonLocation" else "the spark-submit used"
        note(key, Disposition.HONOURED, f"{what} is {values[attribute]}")


def _deploy_mode(data: Mapping[str, Any], kind: str, values: dict[str, Any], note: Callable, problem: Problem) -> None:
    mode = str(data["yarnDeployMode"]).strip().lower()
    if mode not in ("client", "cluster"):
        problem(f"key 'yarnDeployMode' must be client or cluster (got {data['yarnDeployMode']!r})")
    elif kind == "local":
        note("yarnDeployMode", Disposition.IGNORED, "a local target uses no YARN")
    elif kind == "cluster":
        note("yarnDeployMode", Disposition.HONOURED if mode == "cluster" else Disposition.IGNORED,
             "Livy batches run the driver on the cluster (YARN cluster mode)")
    elif data.get("deployMode") is not None:
        note("yarnDeployMode", Disposition.IGNORED, "'deployMode' is set and wins")
    else:
        values["deploy_mode"] = mode
        note("yarnDeployMode", Disposition.MAPPED, f"spark-submit's deploy mode is {mode}")
