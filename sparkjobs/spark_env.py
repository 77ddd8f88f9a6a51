"""Finding spark-submit and Java on this machine, and reading spark-defaults style files."""
from __future__ import annotations

import importlib.resources
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Mapping

from .errors import ConfigError, TargetError

__all__ = ["find_spark_home", "spark_submit_path", "check_java", "read_spark_defaults", "resource_dir"]

MIN_JAVA = 17  # a major version; Java names itself by one since 9 (1.8 is Java 8)


#: The data folders sparkjobs ships, by their names in the repository, with their names inside
#: the installed package (a package name cannot contain "-"); see sparkjobs/_resources.
_RESOURCES = {"aml_config": "aml_config", "spark-conf": "spark_conf"}


def resource_dir(name: str) -> Path:
    """A data folder shipped with sparkjobs (``aml_config``, ``spark-conf``), as a real directory.

    A real one, because the JVM is handed files from ``spark-conf/`` by path; sparkjobs runs its
    own files by path too (the bootstrap, the supervisor), so it is never imported from a zip.
    """
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / name).is_dir():
        # A source checkout (an editable install, or PYTHONPATH): its own top-level folders.
        return checkout / name
    folder = importlib.resources.files("sparkjobs._resources") / _RESOURCES[name]
    if isinstance(folder, Path) and folder.is_dir():
        return folder
    raise ConfigError(f"The sparkjobs installation is missing its {name}/ folder; reinstall sparkjobs.")


def find_spark_home(environ: Mapping[str, str]) -> Path:
    if environ.get("SPARK_HOME"):
        return Path(environ["SPARK_HOME"])
    # find_spec locates pyspark without importing it (importing costs ~0.3 s).
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.origin:
        raise ConfigError("Spark was not found: install pyspark (pip install pyspark) or set SPARK_HOME.")
    return Path(spec.origin).parent


def spark_submit_path(environ: Mapping[str, str]) -> Path:
    path = find_spark_home(environ) / "bin" / "spark-submit"
    if not path.exists():
        raise ConfigError(f"spark-submit was not found at {path}; check SPARK_HOME.")
    return path


def _java_binary(environ: Mapping[str, str]) -> str:
    if environ.get("JAVA_HOME"):
        return str(Path(environ["JAVA_HOME"]) / "bin" / "java")
    found = shutil.which("java", path=environ.get("PATH"))
    if not found:
        raise ConfigError("Java was not found: Spark needs Java 17 or newer on PATH or in JAVA_HOME.")
    return found


def check_java(environ: Mapping[str, str], cache_dir: Path) -> None:
    """Fail early with a clear message when Java is missing or older than 17.

    ``java -version`` costs ~0.1 s, so the answer is cached per binary and mtime.
    """
    binary = _java_binary(environ)
    try:
        real = os.path.realpath(binary)
        key = f"{real}:{os.stat(real).st_mtime_ns}"
    except OSError:
        raise ConfigError(f"Java was not found at {binary}: Spark needs Java 17 or newer.") from None
    cache = cache_dir / "java.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            version = cached["version"]
            if int(version) < MIN_JAVA:
                raise ConfigError(f"Java {version} at {binary} is too old: Spark needs Java 17 or newer.")
            return
    except (OSError, ValueError, KeyError):
        pass
    try:
        done = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"Java at {binary} could not be run ({exc}): Spark needs Java 17 or newer.") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        raise TargetError(f"Could not tell the version of Java at {binary}.")
    major = match.group(1) if match.group(1) != "1" else match.group(2)  # 1.8 means Java 8
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "version": major}))
    if int(major) < MIN_JAVA:
        raise ConfigError(f"Java {major} at {binary} is too old: Spark needs Java 17 or newer.")


def read_spark_defaults(path: Path) -> dict[str, str]:
    """Parse a spark-defaults.conf style file: ``key value`` or ``key=value`` per line."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = re.split(r"\s*=\s*|\s+", line, maxsplit=1)
        if len(parts) != 2:
            raise ConfigError(f"{path}: line {number} is not 'key value'.")
        values[parts[0]] = parts[1]
    return values
