"""tests/run checks what the machine must already have before it installs anything: each missing
or too old requirement is one ``Error:`` sentence and exit code 2.

These run a copy of the script in an empty folder, so even a check that wrongly let everything
through could install nothing into this checkout. The requirements are stand-ins on a PATH of
their own: a stand-in java only answers ``-version``, as that is all tests/run asks of it.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

JAVA_17 = 'openjdk version "17.0.2" 2022-01-18'


class Machine:
    """A copy of tests/run and a bin folder holding only the tools a test puts there."""

    def __init__(self, root: Path) -> None:
        self.checkout = root / "checkout"
        (self.checkout / "tests").mkdir(parents=True)
        shutil.copy(REPO / "tests" / "run", self.checkout / "tests" / "run")
        self.bin = root / "bin"
        self.bin.mkdir()
        for tool in ("dirname", "sed", "head"):  # what the script itself uses
            (self.bin / tool).symlink_to(shutil.which(tool))

    def tool(self, name: str, script: str = "exit 0", folder: Path | None = None) -> None:
        path = (folder or self.bin) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\n{script}\n")
        path.chmod(0o755)

    def with_everything(self) -> Machine:
        (self.bin / "python3").symlink_to(sys.executable)
        self.tool("java", f"echo '{JAVA_17}' >&2")
        self.tool("node")
        self.tool("npm")
        return self

    def run(self, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [shutil.which("bash"), str(self.checkout / "tests" / "run")],
            capture_output=True, text=True, env={"PATH": str(self.bin), **env}, stdin=subprocess.DEVNULL, timeout=60,
        )


@pytest.fixture
def machine(tmp_path) -> Machine:
    return Machine(tmp_path)


def _refused(done: subprocess.CompletedProcess, message: str) -> None:
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"Error: {message}\n")


def test_no_python(machine):
    _refused(machine.run(), "Python 3.10 or newer is required; python3 was not found on PATH.")


def test_python_too_old(machine):
    machine.with_everything()
    (machine.bin / "python3").unlink()
    # The real interpreter, claiming to be 3.9 to the code that tests/run hands it with -c.
    machine.tool("python3", f"""exec {sys.executable} -c 'import sys; sys.version_info = (3, 9, 18, "final", 0); exec(sys.argv[1])' "$2\"""")
    _refused(machine.run(), "Python 3.10 or newer is required; python3 is Python 3.9.")


def test_no_java(machine):
    machine.with_everything()
    (machine.bin / "java").unlink()
    _refused(machine.run(), "Java 17 or newer is required (Spark runs on it); no java was found on PATH.")


@pytest.mark.parametrize("version", ["11.0.2", "1.8.0_392"])
def test_java_too_old(machine, version):
    machine.with_everything().tool("java", f"echo 'openjdk version \"{version}\" 2019-01-15' >&2")
    _refused(machine.run(), f"Java 17 or newer is required (Spark runs on it); the java on PATH is Java {version}.")


def test_java_home_is_the_java_that_counts(machine, tmp_path):
    # spark-submit takes JAVA_HOME's java over the one on PATH, so the check does too.
    machine.with_everything().tool("java", "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2", folder=tmp_path / "jdk" / "bin")
    _refused(
        machine.run(JAVA_HOME=str(tmp_path / "jdk")),
        f"Java 17 or newer is required (Spark runs on it); the java in JAVA_HOME ({tmp_path / 'jdk'}) is Java 11.0.2.",
    )
    _refused(
        machine.run(JAVA_HOME=str(tmp_path / "nothing")),
        f"Java 17 or newer is required (Spark runs on it); no java was found in JAVA_HOME ({tmp_path / 'nothing'}).",
    )


def test_java_that_does_not_tell_its_version(machine):
    machine.with_everything().tool("java", "echo 'Error: could not open jvm.cfg' >&2; exit 1")
    _refused(
        machine.run(),
        "Java 17 or newer is required (Spark runs on it); the java on PATH is of a version that java -version does not tell.",
    )


def test_no_node(machine):
    machine.with_everything()
    (machine.bin / "node").unlink()
    _refused(
        machine.run(),
        "Node.js is required for the tests (they run Azurite, the Azure Blob emulator); node was not found on PATH.",
    )


def test_no_npm(machine):
    machine.with_everything()
    (machine.bin / "npm").unlink()
    _refused(machine.run(), "npm is required for the tests (it installs Azurite); npm was not found on PATH.")
