"""The local target: spark-submit on this machine, in a fresh copy of the project."""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Mapping

from ..config import Framework, RunSettings
from ..credentials import without_credentials
from ..metrics import METRICS_FILE, PARAMS_FILE
from ..packages import PackageResolution
from ..snapshot import materialise
from ..spark_env import resource_dir, spark_submit_path
from .base import Execution, JobLocations, SubmitPlan, Target
from .shipping import launch_environment
from .submit_process import BOOTSTRAP_ERROR_FILE, EXIT_FILE, ProcessExecution

__all__ = ["LocalTarget", "package_resolution", "spark_submit_argv", "write_private_json", "shared_folder"]

SNAPSHOT_DIR = "snapshot"


def shared_folder(settings: RunSettings) -> Path:
    base = Path(settings.compute.native_shared_directory).expanduser()
    return base / settings.project.workspace / settings.project.name


def package_resolution(settings: RunSettings) -> PackageResolution | None:
    """The run's packages, which spark-submit resolves on this machine (not for plain Python)."""
    if settings.framework is Framework.PYTHON:
        return None
    deps = settings.dependencies
    return PackageResolution.of(deps.packages, deps.file, "this machine")


def job_python(plan: SubmitPlan) -> str:
    """The Python that runs the job: the compute's pythonLocation, else sparkjobs' own."""
    return plan.settings.compute.python_location or sys.executable


def spark_submit_of(plan: SubmitPlan, environ: Mapping[str, str]) -> str:
    """The compute's sparkSubmitLocation, else the spark-submit of SPARK_HOME or pyspark."""
    return plan.settings.compute.spark_submit_location or str(spark_submit_path(environ))


def pyspark_submit_args(plan: SubmitPlan) -> str:
    """spark_submit_argv's options as PYSPARK_SUBMIT_ARGS, which pyspark reads (shlex-split)
    when a plain Python script starts a SparkSession."""
    argv = spark_submit_argv(plan, "", plan.settings.compute.master, Path(), "")[1:-2]
    return " ".join(shlex.quote(item) for item in argv + ["pyspark-shell"])


def write_private_json(path: Path, value: object) -> None:
    """Write JSON readable by this user only; used for files that may carry secrets."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(value, handle)


def spark_submit_argv(
    plan: SubmitPlan,
    spark_submit: str,
    master: str,
    bootstrap: Path,
    launch_spec: str,
    *,
    extra: list[str] | None = None,
) -> list[str]:
    deps = plan.settings.dependencies
    # Workbench's spark_dependencies.yml names the application with spark.app.name; --name would override it.
    name = plan.spark_conf.get("spark.app.name") or f"sparkjobs-{plan.run_id}"
    argv = [spark_submit, "--master", master, "--name", name]
    for key, value in with_quiet_driver_log(plan.spark_conf).items():
        argv += ["--conf", f"{key}={value}"]
    if deps.packages:
        argv += ["--packages", ",".join(deps.packages)]
    if deps.repositories:
        argv += ["--repositories", ",".join(deps.repositories)]
    argv += extra or []
    return argv + [str(bootstrap), launch_spec]


def with_quiet_driver_log(conf: Mapping[str, str]) -> dict[str, str]:
    """Point the driver's log4j at spark-conf/log4j2.properties (Spark at WARN), keeping any
    extraJavaOptions the user set, so the job's own output is what the user reads."""
    merged = dict(conf)
    log4j = resource_dir("spark-conf") / "log4j2.properties"
    if log4j.exists() and "log4j.configurationFile" not in merged.get("spark.driver.extraJavaOptions", ""):
        option = f"-Dlog4j.configurationFile=file:{log4j}"
        merged["spark.driver.extraJavaOptions"] = f"{option} {merged.get('spark.driver.extraJavaOptions', '')}".strip()
    return merged


class LocalTarget(Target):
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)

    def locations(self, settings: RunSettings, workdir: Path, run_id: str) -> JobLocations:
        return JobLocations(
            outputs=str(workdir / SNAPSHOT_DIR / "outputs") + os.sep,
            shared=str(shared_folder(settings)) + os.sep,
        )

    def _launch(self, plan: SubmitPlan) -> tuple[Path, Path]:
        snapshot_dir = plan.workdir / SNAPSHOT_DIR
        materialise(plan.snapshot, snapshot_dir)
        (snapshot_dir / "outputs").mkdir(exist_ok=True)
        shared_folder(plan.settings).mkdir(parents=True, exist_ok=True)
        credentials = None
        payload = self._credentials_file(plan)
        if payload is not None:
            credentials = plan.workdir / "credentials.json"
            write_private_json(credentials, payload)
        spec = {
            "version": 1,
            "run_id": plan.run_id,
            "script": plan.script,
            "args": list(plan.args),
            "snapshot_archive": None,
            "env": dict(plan.env),
            "outputs_uri": None,
            "log_uri": None,
            "credentials_uri": str(credentials) if credentials else None,
            # The driver runs here: the script's context appends to these, and the finisher stores them.
            "metrics_uri": str(plan.workdir / METRICS_FILE),
            "params_uri": str(plan.workdir / PARAMS_FILE),
            "error_path": str(plan.workdir / BOOTSTRAP_ERROR_FILE),
            "work_dir": str(plan.workdir),  # removed once the run is settled, even if the job was killed
        }
        if plan.environment is not None:
            spec["environment"] = launch_environment(plan.environment, str(plan.environment.unpacked))
        launch = plan.workdir / "launch.json"
        launch.write_text(json.dumps(spec, indent=2))
        return snapshot_dir, launch

    def _credentials_file(self, plan: SubmitPlan) -> dict | None:
        """What the bootstrap reads from the run's private credentials file; None for no file."""
        return {"hadoop": dict(plan.hadoop_secrets)} if plan.hadoop_secrets else None

    def process_env(self, plan: SubmitPlan) -> dict[str, str]:
        # sparkjobs' own credentials stay with sparkjobs: a job that prints its environment
        # (or a library that logs it) must not print them.
        env = without_credentials(self._environ)
        env.update(plan.env)
        env["PYTHONUNBUFFERED"] = "1"  # the driver's prints reach the terminal as they happen
        # Workbench scripts import azureml.logging: a stand-in on the job's path only (driver,
        # local executors, child processes), never installed where the user's Python finds it.
        from ..bootstrap import WORKBENCH_PATH

        # The run's dependencies likewise: local Spark's Python workers inherit PYTHONPATH from the
        # JVM, which inherits it from here (shipping.py says why the project's own files still win).
        deps = str(plan.environment.unpacked) if plan.environment is not None else None
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), deps, str(WORKBENCH_PATH)]))
        python = job_python(plan)
        if plan.settings.compute.python_location:  # the compute's pythonLocation wins
            env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = python
        env.setdefault("PYSPARK_PYTHON", python)
        env.setdefault("PYSPARK_DRIVER_PYTHON", python)
        if plan.settings.framework is Framework.PYTHON:
            # Plain Python: a script that starts a SparkSession gets the run's Spark settings
            # through pyspark's own launcher, as spark-submit would have passed them.
            env["PYSPARK_SUBMIT_ARGS"] = pyspark_submit_args(plan)
        if plan.settings.compute.master.startswith("local"):
            # A local job needs no network: bind Spark to the loopback interface only.
            env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        return env

    def argv(self, plan: SubmitPlan, launch: Path) -> list[str]:
        from ..bootstrap import BOOTSTRAP_PATH

        if plan.settings.framework is Framework.PYTHON:
            return [job_python(plan), str(BOOTSTRAP_PATH), str(launch)]
        submit = spark_submit_of(plan, self._environ)
        return spark_submit_argv(plan, submit, plan.settings.compute.master, BOOTSTRAP_PATH, str(launch))

    def submit(self, plan: SubmitPlan) -> Execution:
        snapshot_dir, launch = self._launch(plan)
        return ProcessExecution(
            self.argv(plan, launch),
            cwd=snapshot_dir,
            env=self.process_env(plan),
            outputs=snapshot_dir / "outputs",
            exit_file=plan.workdir / EXIT_FILE,
            packages=package_resolution(plan.settings),
        )

    def describe(self, plan: SubmitPlan) -> dict:
        described = {"argv": self.argv(plan, plan.workdir / "launch.json"), "cwd": str(plan.workdir / SNAPSHOT_DIR)}
        if plan.settings.framework is Framework.PYTHON:  # where spark_conf goes, for a script that starts Spark
            described["env"] = {"PYSPARK_SUBMIT_ARGS": pyspark_submit_args(plan)}
        return described
