"""Small helpers shared by tests: writing projects and calling the CLI in a real subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def make_project(root: Path, share: Path, *, framework: str = "PySpark", extra_compute: str = "") -> Path:
    write(root / "aml_config" / "local.compute", f"type: local\nnativeSharedDirectory: {share}/\nmaster: local[1]\n{extra_compute}")
    write(
        root / "aml_config" / "local.runconfig",
        f"""
        Target: local
        Framework: {framework}
        ArgumentVector: ["$file"]
        EnvironmentVariables:
          GREETING: hello
        SparkDependenciesFile: aml_config/spark_dependencies.yml
        """,
    )
    write(root / "aml_config" / "spark_dependencies.yml", "configuration:\n  spark.sql.shuffle.partitions: 2\npackages: []\n")
    write(root / "aml_config" / "project.yml", "name: demo\nworkspace: ws\n")
    return root


def cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sparkjobs.cli", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def cli_json(*args: str, **kwargs) -> tuple[subprocess.CompletedProcess, dict]:
    done = cli(*args, **kwargs)
    try:
        return done, json.loads(done.stdout)
    except ValueError as exc:
        raise AssertionError(f"not JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}") from exc


def signal_run_after(marker: str, signum: int, *args: str, env: dict | None = None, wait: float = 120) -> tuple[int, str]:
    """Start `sparkjobs <args>`, send signum once the job prints marker, and return
    (exit code, stdout). Bounded: reading stops at the deadline, and the process is killed
    (by its pid) if it outlives the test."""
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "sparkjobs.cli", *args],
        env=env if env is not None else dict(os.environ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        deadline = time.monotonic() + wait
        assert process.stderr is not None
        for line in process.stderr:
            if marker in line or time.monotonic() > deadline:
                break
        process.send_signal(signum)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, out
