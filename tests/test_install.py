"""Installing sparkjobs as users do, and what the sdist and the wheel carry.

The sdist is built from a copy of the checkout, and the wheel from the sdist, as pip builds one
from a package index. The wheel is then installed with ``--user`` into a temporary user base and
with ``--prefix`` into a temporary folder, never into this interpreter's site-packages, and
``init`` and a run are driven through the installed ``sparkjobs`` script from a folder outside
the checkout, so nothing of the checkout is on the path. Building fetches the build backend that
pyproject.toml names from the package index, as any build does (tests/run needs the index too).
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import REPO, write

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10; pytest itself depends on tomli there
    import tomli as tomllib

pytestmark = pytest.mark.install

#: Left out of the copy the sdist is built from: what a checkout gathers, not what it holds.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "outputs"
)
#: The data folders at the top of the repository, with their package names in the wheel.
_DATA = {"aml_config": "aml_config", "spark-conf": "spark_conf"}


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    version: str


@dataclass(frozen=True)
class Installed:
    """One installation of the wheel: its root folder, its script, and how to run things in it."""

    root: Path
    script: Path
    python: str
    env: dict[str, str]

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.script), *args], capture_output=True, text=True, env=self.env, cwd=cwd,
            stdin=subprocess.DEVNULL, timeout=300,
        )

    def python_says(self, code: str, cwd: Path) -> list[str]:
        done = _ok([self.python, "-c", code], env=self.env, cwd=cwd)
        return done.stdout.splitlines()


def _ok(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600, **kwargs)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def _pip(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    _ok([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd, env=env if env is not None else dict(os.environ))


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    root = tmp_path_factory.mktemp("build")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    # What tests/run leaves in a checkout: Azurite from npm. It must never reach the sdist.
    write(source / "tests" / "node_modules" / "azurite" / "package.json", '{"name": "azurite"}\n')
    pyproject = tomllib.loads((source / "pyproject.toml").read_text())
    backend = root / "backend"
    _pip("install", "--quiet", "--target", str(backend), *pyproject["build-system"]["requires"], cwd=root)
    dist = root / "dist"
    # -S: the backend alone, without this interpreter's site-packages, as pip isolates a build.
    build_sdist = "import setuptools.build_meta as backend, sys; backend.build_sdist(sys.argv[1])"
    _ok([sys.executable, "-S", "-c", build_sdist, str(dist)], cwd=source, env={**os.environ, "PYTHONPATH": str(backend)})
    (sdist,) = dist.glob("*.tar.gz")
    _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(sdist), cwd=root)
    (wheel,) = dist.glob("*.whl")
    return Built(sdist=sdist, wheel=wheel, version=wheel.name.split("-")[1])


def _clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without the checkout on the path, and with a temporary home (the
    template's shared folder is under ~)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONUSERBASE", "PYTHONNOUSERSITE")}
    env["HOME"] = str(home)
    return env


def _user_install(wheel: Path, tmp_path: Path) -> Installed:
    """``pip install --user`` into a temporary user base.

    A virtual environment hides the user site, and pip refuses ``--user`` in one, so there the
    interpreter the environment was made from takes the install (driven by this pip, through
    ``--python``) and reaches this environment's packages, the runtime dependencies that
    ``--no-deps`` leaves out, through a .pth file in the user site.
    """
    base = tmp_path / "userbase"
    env = {**_clean_env(tmp_path / "home"), "PYTHONUSERBASE": str(base)}
    python, target = sys.executable, []
    if not site.ENABLE_USER_SITE:
        python = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")
        target = ["--python", python]
    # --ignore-installed: the checkout's own sparkjobs, installed in this interpreter, must not
    # count as already satisfying the wheel.
    _pip(*target, "install", "--quiet", "--user", "--no-deps", "--no-index", "--ignore-installed", str(wheel), cwd=tmp_path, env=env)
    if target:
        user_site = _ok([python, "-c", "import site; print(site.getusersitepackages())"], env=env).stdout.strip()
        paths = sysconfig.get_paths()
        write(Path(user_site) / "sparkjobs-test-dependencies.pth", f"{paths['purelib']}\n{paths['platlib']}\n")
    return Installed(root=base, script=base / "bin" / "sparkjobs", python=python, env=env)


def _prefix_install(wheel: Path, tmp_path: Path) -> Installed:
    """``pip install --prefix`` into a temporary folder, run with that folder's site-packages on
    PYTHONPATH and its bin/sparkjobs, as a user of --prefix does."""
    prefix = tmp_path / "prefix"
    _pip("install", "--quiet", "--prefix", str(prefix), "--no-deps", "--no-index", "--ignore-installed", str(wheel), cwd=tmp_path)
    # Where pip puts it under the prefix depends on the platform's install scheme (Debian's differs).
    (package,) = [p.parent for p in prefix.rglob("sparkjobs/__init__.py")]
    (script,) = prefix.rglob("bin/sparkjobs")
    env = {**_clean_env(tmp_path / "home"), "PYTHONPATH": str(package.parent)}
    return Installed(root=prefix, script=script, python=sys.executable, env=env)


def _check_finds_its_own_files(installed: Installed, built: Built, cwd: Path) -> None:
    version = installed.run("--version", cwd=cwd)
    assert (version.returncode, version.stdout, version.stderr) == (0, f"sparkjobs {built.version}\n", "")
    code = (
        "import sparkjobs, sparkjobs.spark_env as env\n"
        "print(sparkjobs.__file__)\nprint(env.resource_dir('aml_config'))\nprint(env.resource_dir('spark-conf'))"
    )
    for path in installed.python_says(code, cwd):
        assert Path(path).resolve().is_relative_to(installed.root.resolve()), f"{path} is not from the installation in {installed.root}"


def _init(installed: Installed, project: Path, cwd: Path) -> None:
    done = installed.run("init", "--project", str(project), cwd=cwd)
    assert done.returncode == 0, done.stderr
    shipped = sorted(p.name for p in (REPO / "aml_config").iterdir() if p.is_file())
    assert sorted(p.name for p in (project / "aml_config").iterdir()) == shipped


def test_the_wheel_carries_every_module_the_data_folders_and_the_license(built):
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"sparkjobs-{built.version}.dist-info"
        metadata = archive.read(f"{dist_info}/METADATA").decode().splitlines()
    modules = {
        p.relative_to(REPO).as_posix()
        for package in ("sparkjobs", "livy")
        for p in (REPO / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    data = {f"sparkjobs/_resources/{packaged}/{p.name}" for folder, packaged in _DATA.items() for p in (REPO / folder).iterdir()}
    assert sorted((modules | data) - names) == []
    assert sorted(n for n in names if not n.startswith(("sparkjobs/", "livy/", f"{dist_info}/"))) == []
    assert f"{dist_info}/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert f"Version: {built.version}" in metadata
    license_text = (REPO / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n") and "Copyright (c) 2026 The sparkjobs authors" in license_text


def test_the_sdist_leaves_the_tests_out_and_holds_what_the_wheel_is_built_from(built):
    # The wheel in `built` was built from this sdist, so it already proved enough for a build.
    with tarfile.open(built.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert sorted(n for n in names if n.startswith(("tests/", "examples/", "bench/", ".ci/")) or "node_modules" in n) == []
    expected = {"pyproject.toml", "README.md", "LICENSE", "sparkjobs/cli.py", "livy/client.py"}
    expected |= {f"{folder}/{p.name}" for folder in _DATA for p in (REPO / folder).iterdir()}
    assert sorted(expected - names) == []


def test_a_user_install_finds_its_template_and_runs(built, tmp_path):
    installed = _user_install(built.wheel, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _check_finds_its_own_files(installed, built, elsewhere)
    project = tmp_path / "proj"
    _init(installed, project, elsewhere)
    # Framework Python keeps this one Spark-free; the --prefix test runs Spark.
    runconfig = project / "aml_config" / "local.runconfig"
    runconfig.write_text(runconfig.read_text().replace("Framework: PySpark", "Framework: Python"))
    write(project / "hello.py", "print('hello from', __name__)\n")
    done = installed.run("run", "-c", "local", "--json", "--project", str(project), "hello.py", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed" and "hello from __main__" in done.stderr


@pytest.mark.spark
def test_a_prefix_install_finds_its_spark_defaults_and_runs_spark(built, tmp_path):
    installed = _prefix_install(built.wheel, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _check_finds_its_own_files(installed, built, elsewhere)
    project = tmp_path / "proj"
    _init(installed, project, elsewhere)
    write(project / "count.py", "from pyspark.sql import SparkSession\nprint('rows', SparkSession.builder.getOrCreate().range(3).count())\n")

    # The template as shipped: spark-conf/local.conf is read, and the JVM gets the log4j file by path.
    dry = installed.run("run", "-c", "local", "--dry-run", "--project", str(project), "count.py", cwd=elsewhere)
    assert dry.returncode == 0, dry.stderr
    described = json.loads(dry.stdout)
    assert described["spark_conf"]["spark.ui.enabled"] == "false"
    (option,) = [a for a in described["submit"]["argv"] if "log4j.configurationFile=file:" in a]
    log4j = Path(option.split("log4j.configurationFile=file:", 1)[1].split()[0])
    assert log4j.is_file() and log4j.resolve().is_relative_to(installed.root.resolve())

    done = installed.run("run", "-c", "local", "--json", "--project", str(project), "count.py", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed" and "rows 3" in done.stderr
