"""Python dependencies, the build side (issue 12, items 1, 2, 4 and 5): a run's RequirementsFile or
Workbench CondaDependenciesFile is resolved by real pip against the real package index, for the
target's platform and Python, packed into one content-addressed archive, cached and stored once.

The packages are small, pinned, and not installed in the test's own Python: ``tabulate`` (pure
Python) and ``msgpack`` (native code). Runs use Framework Python, so no Spark is needed here;
importing them inside a job is the shipping side's test.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from helpers import cli, cli_json, make_project, write
from sparkjobs.errors import ConfigError

PURE, NATIVE = "tabulate==0.9.0", "msgpack==1.0.8"
JOB = "print('job ran')\n"


def _project(root: Path, requirements: str = f"{PURE}\n{NATIVE}\n", *, key: str = "RequirementsFile",
             file: str = "requirements.txt", compute: str = "") -> Path:
    make_project(root, root.parent / "share", framework="Python", extra_compute=compute)
    runconfig = root / "aml_config" / "local.runconfig"
    runconfig.write_text(runconfig.read_text() + f"{key}: {file}\n")
    write(root / file, requirements)
    write(root / "job.py", JOB)
    return root


def _env(home: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env.pop("SPARKJOBS_HISTORY", None)
    return {**env, "SPARKJOBS_HOME": str(home), **extra}


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below folder, with its inode and modification time: a rewrite changes one."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def _nothing_written(home: Path) -> None:
    """No run record, no work folder, no environment in the store or the cache, no build left over."""
    assert not (home / "runs").exists() and not (home / "work").exists() and not (home / "environments").exists()
    cache = home / "cache" / "environments"
    assert not cache.exists() or list(cache.iterdir()) == []


def _one_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and done.stderr.splitlines()[-1] == errors[0], done.stderr
    return errors[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One project, run once: its environment is built on that first run."""
    base = tmp_path_factory.mktemp("env")
    project = _project(base / "proj")
    home = base / "home"
    done, record = cli_json("run", "-c", "local", "--json", "job.py", cwd=project, env=_env(home))
    assert done.returncode == 0, done.stderr
    return {"project": project, "home": home, "record": record, "stderr": done.stderr}


def test_the_first_run_builds_the_environment_and_records_it(built):
    environment = built["record"]["environment"]
    assert environment["packages"] == ["msgpack==1.0.8", "tabulate==0.9.0"]
    assert environment["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"  # local: this Python
    assert environment["platform"] == "manylinux2014_x86_64"
    digest = environment["digest"]
    assert f"sparkjobs: Environment {digest[:12]}: built 2 packages (msgpack==1.0.8, tabulate==0.9.0)" in built["stderr"]
    # Kept in the run store, marker last, and in this machine's cache, archive and unpacked.
    stored = built["home"] / "environments" / digest
    assert sorted(p.name for p in stored.iterdir()) == ["COMPLETE", "archive.tar.gz", "manifest.json"]
    cached = built["home"] / "cache" / "environments" / digest
    assert (cached / "archive.tar.gz").read_bytes() == (stored / "archive.tar.gz").read_bytes()
    # The archive's root is the import root: the native module and the pure one at the top.
    with tarfile.open(cached / "archive.tar.gz") as tar:
        names = tar.getnames()
    assert "tabulate/__init__.py" in names and any(n.startswith("msgpack/_cmsgpack.cpython-") for n in names)
    assert not any(n.startswith("bin/") or "__pycache__" in n for n in names)
    assert (cached / "unpacked" / "tabulate" / "__init__.py").is_file()
    shown = cli("runs", "show", built["record"]["id"], cwd=built["project"], env=_env(built["home"]))
    assert f"environment: {digest[:12]} (Python {environment['python_version']}, manylinux2014_x86_64)\n" \
           "  msgpack==1.0.8\n  tabulate==0.9.0\n" in shown.stdout


def test_a_second_run_resolves_builds_and_uploads_nothing(built):
    home = built["home"]
    before = (_files(home / "environments"), _files(home / "cache" / "environments"))
    # pip is pointed at no index at all: had the run called it, it would have failed with exit 2.
    no_pip = _env(home, PIP_NO_INDEX="1", PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_FIND_LINKS="")
    done, record = cli_json("run", "-c", "local", "--json", "job.py", cwd=built["project"], env=no_pip)
    assert done.returncode == 0, done.stderr
    assert record["environment"] == built["record"]["environment"]
    assert "Resolving" not in done.stderr and "Environment" not in done.stderr
    # Not a file of the run store's environments or of the local cache was written again.
    assert (_files(home / "environments"), _files(home / "cache" / "environments")) == before


def test_a_change_of_one_pin_builds_a_new_environment(built, tmp_path):
    project = _project(tmp_path / "proj", f"tabulate==0.8.10\n{NATIVE}\n")
    done, record = cli_json("run", "-c", "local", "--json", "job.py", cwd=project, env=_env(built["home"]))
    assert done.returncode == 0, done.stderr
    assert record["environment"]["packages"] == ["msgpack==1.0.8", "tabulate==0.8.10"]
    old, new = built["record"]["environment"]["digest"], record["environment"]["digest"]
    assert new != old
    for digest in (old, new):  # both kept, each whole
        assert (built["home"] / "environments" / digest / "COMPLETE").exists()


WORKBENCH_CONDA = """\
# Written by Azure ML Workbench: the dependencies of runs with userManagedEnvironment false.
name: project_environment
dependencies:
  # The python interpreter version.
  - python=3.5.2
  # Required for Jupyter Notebooks.
  - ipykernel=4.6.1
  - msgpack-python=1.0.8
  - pip:
    - tabulate==0.9.0
    # Helper utilities for dealing with Azure ML Workbench Assets.
    - https://azuremldownloads.blob.core.windows.net/wheels/latest/azureml.assets-1.0.0-py3-none-any.whl?sv=2016-05-31
"""


def test_a_workbench_conda_file_builds_for_the_computes_python(tmp_path):
    project = _project(tmp_path / "proj", WORKBENCH_CONDA, key="CondaDependenciesFile",
                       file="aml_config/conda_dependencies.yml", compute='pythonVersion: "3.8"\n')
    done, info = cli_json("env", "build", "-c", "local", "--json", cwd=project, env=_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    assert [(p["name"], p["version"]) for p in info["packages"]] == [("msgpack", "1.0.8"), ("tabulate", "0.9.0")]
    assert (info["python_version"], info["source"]) == ("3.8", "aml_config/conda_dependencies.yml")
    with tarfile.open(info["archive"]) as tar:  # wheels for Python 3.8, not this machine's
        assert any(n.startswith("msgpack/_cmsgpack.cpython-38-x86_64-linux-gnu") for n in tar.getnames())
    notices = [line for line in done.stderr.splitlines() if "ignored" in line]
    assert notices == [
        "sparkjobs: aml_config/conda_dependencies.yml: ipykernel is ignored: Workbench used it for its own tools, and a job "
        "does not need it.",
        "sparkjobs: A Workbench wheel URL under 'pip:' is ignored: sparkjobs brings what azureml.logging needs.",
        "sparkjobs: aml_config/conda_dependencies.yml asks for python=3.5; it is ignored, and the environment is built "
        "for the target's Python 3.8.",
    ]
    assert info["stored_bytes"] > 0


def test_conda_packages_without_a_pypi_name_are_refused_together(tmp_path):
    conda = "dependencies:\n  - python=3.8\n  - numpy=1.24\n  - r-base=4.1\n  - conda-forge::mkl\n"
    project = _project(tmp_path / "proj", conda, key="CondaDependenciesFile", file="conda.yml")
    done = cli("run", "-c", "local", "job.py", cwd=project, env=_env(tmp_path / "home"))
    assert _one_error(done) == (
        "Error: The dependencies file conda.yml: 'r-base=4.1' and 'conda-forge::mkl' are conda packages with no known "
        "PyPI equivalent, and no conda channel is reachable from here; put the PyPI name under '- pip:' instead."
    )
    _nothing_written(tmp_path / "home")


BAD = {
    "missing": ("sparkjobs-no-such-package-x7q==1.0",
                "there is no package sparkjobs-no-such-package-x7q on the package index; check its name"),
    "sdist only": ("docopt==0.6.2", "docopt==0.6.2 is published only as source (no wheel for this platform and Python)"),
    "conflict": ("tabulate==0.9.0\ntabulate<0.9",
                 "the requirements conflict (Cannot install tabulate<0.9 and tabulate==0.9.0 because these package "
                 "versions have conflicting dependencies: The user requested tabulate==0.9.0; The user requested tabulate<0.9)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_requirements_pip_cannot_install_stop_the_run_before_anything_is_written(case, tmp_path):
    requirements, reason = BAD[case]
    project = _project(tmp_path / "proj", requirements + "\n")
    home = tmp_path / "home"
    done = cli("run", "-c", "local", "job.py", cwd=project, env=_env(home))
    error = _one_error(done)
    assert error.startswith("Error: The dependencies in requirements.txt cannot be installed for Python "), error
    assert reason in error and "job ran" not in done.stdout
    _nothing_written(home)


def test_an_interrupted_build_is_never_reused(tmp_path):
    project = _project(tmp_path / "proj")
    home = tmp_path / "home"
    cache = home / "cache" / "environments"
    # Killed, with the pip it started, while pip builds into the staging folder.
    process = subprocess.Popen([sys.executable, "-m", "sparkjobs.cli", "env", "build", "-c", "local"], cwd=project,
                               env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(cache.glob(".building-*/*")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the build ended before it could be interrupted"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    left = [p.name for p in cache.iterdir()]
    assert len(left) == 1 and left[0].startswith(".building-"), left  # only the staging folder, no entry, no key
    assert not (home / "environments").exists()
    show = cli("env", "show", "-c", "local", cwd=project, env=_env(home))
    assert _one_error(show).endswith("is not built yet on this machine; build it with 'sparkjobs env build -c local'.")

    done, info = cli_json("env", "build", "-c", "local", "--json", cwd=project, env=_env(home))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in cache.iterdir()) == [info["digest"], "keys"]  # the dead build's folder is gone

    # An upload cut short leaves the archive without its marker: it is uploaded again, whole.
    stored = home / "environments" / info["digest"]
    (stored / "COMPLETE").unlink()
    (stored / "archive.tar.gz").write_bytes(b"cut short")
    again, info = cli_json("env", "build", "-c", "local", "--json", cwd=project, env=_env(home))
    assert again.returncode == 0 and info["stored_bytes"] > 0, again.stderr
    assert (stored / "archive.tar.gz").read_bytes() == Path(info["archive"]).read_bytes()
    assert (stored / "COMPLETE").exists()


def test_env_show_prints_the_digest_and_versions_a_run_would_use(built):
    env = _env(built["home"], PIP_NO_INDEX="1")
    done, info = cli_json("env", "show", "-c", "local", "--json", cwd=built["project"], env=env)
    assert done.returncode == 0, done.stderr
    recorded = built["record"]["environment"]
    assert info["digest"] == recorded["digest"] and info["source"] == "requirements.txt"
    assert [f"{p['name']}=={p['version']}" for p in info["packages"]] == recorded["packages"]
    assert all(len(p["sha256"]) == 64 for p in info["packages"])
    text = cli("env", "show", "-c", "local", cwd=built["project"], env=env)
    assert text.returncode == 0 and text.stdout.startswith(f"environment: {recorded['digest']}\nbuilt from:  requirements.txt\n")
    assert text.stdout.endswith("packages:    2 packages\n  msgpack==1.0.8\n  tabulate==0.9.0\n")


def test_a_dry_run_shows_a_built_environment_and_builds_none(built, tmp_path):
    done, described = cli_json("run", "-c", "local", "--dry-run", "job.py", cwd=built["project"], env=_env(built["home"]))
    assert done.returncode == 0 and described["environment"]["digest"] == built["record"]["environment"]["digest"]
    fresh = _project(tmp_path / "proj", "tabulate==0.8.9\n")
    done, described = cli_json("run", "-c", "local", "--dry-run", "job.py", cwd=fresh, env=_env(tmp_path / "home"))
    assert done.returncode == 0 and described["environment"] is None
    assert not (tmp_path / "home" / "cache" / "environments").exists()


def test_declaring_keys_are_checked_when_loaded(tmp_path):
    project = _project(tmp_path / "proj", compute="pythonVersion: 3.10\n")
    done = cli("run", "-c", "local", "job.py", cwd=project, env=_env(tmp_path / "home"))
    assert "key 'pythonVersion' must be a Python version such as \"3.8\", in quotes (YAML reads 3.10 as 3.1)" in _one_error(done)
    runconfig = project / "aml_config" / "local.runconfig"
    (project / "aml_config" / "local.compute").write_text(f"type: local\nnativeSharedDirectory: {tmp_path}/share/\n")
    runconfig.write_text(runconfig.read_text().replace("requirements.txt", "nope.txt"))
    done = cli("env", "build", "-c", "local", cwd=project, env=_env(tmp_path / "home"))
    assert "key 'RequirementsFile' names nope.txt, which does not exist" in _one_error(done)
    assert not (tmp_path / "home").exists()


def test_a_warm_run_loads_neither_pip_nor_the_parser_nor_the_packer(built, tmp_path):
    """What the warm path costs is what it imports: only the cache lookup, never the modules that
    parse requirements (packaging), resolve them or pack archives (tarfile)."""
    from test_startup_imports import _WRAPPER

    out = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _WRAPPER, str(out), "run", "-c", "local", "job.py"], cwd=built["project"],
                          env=_env(built["home"]), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(out.read_text()))
    assert "sparkjobs.environments.cache" in modules  # the environment was looked up
    heavy = ("packaging", "tarfile", "sparkjobs.environments.declare", "sparkjobs.environments.resolve",
             "sparkjobs.environments.pack")
    assert sorted(m for m in modules if m in heavy or m.startswith("packaging.")) == []


class _CountingRelay:
    """A TCP relay in front of Azurite that keeps every byte the client sends, so a test can read
    the HTTP requests that went over the wire. Bound to 127.0.0.1; closed by the test."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.sent = bytearray()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._upstream = port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source, dest, counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted:
                    with self._lock:
                        self.sent += data
                dest.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, dest):
                try:
                    end.shutdown(2)
                except OSError:
                    pass

    def requests(self) -> list[str]:
        """Method and path of every request sent so far."""
        import re

        with self._lock:
            found = re.finditer(rb"(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP/1\.1\r\n", bytes(self.sent))
            return [f"{m[1].decode()} {m[2].decode()}" for m in found]

    def close(self) -> None:
        self._server.close()


@pytest.mark.azurite
def test_with_a_blob_run_store_the_second_run_sends_no_environment_bytes(tmp_path, azurite, azurite_container):
    relay = _CountingRelay(azurite.port)
    try:
        endpoint = f"http://127.0.0.1:{relay.port}/{azurite.account}"
        connection = azurite.connection_string.replace(azurite.blob_endpoint, endpoint)
        project = _project(tmp_path / "proj")
        env = _env(tmp_path / "home", SPARKJOBS_HISTORY=f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net/team",
                   AZURE_STORAGE_CONNECTION_STRING=connection)
        done, first = cli_json("run", "-c", "local", "--json", "job.py", cwd=project, env=env)
        assert done.returncode == 0, done.stderr
        digest = first["environment"]["digest"]
        puts = [r for r in relay.requests() if r.startswith("PUT ") and "/environments/" in r]
        assert [p.split("/environments/")[1].split("?")[0] for p in puts] == [
            f"{digest}/archive.tar.gz", f"{digest}/manifest.json", f"{digest}/COMPLETE"]
        archive = tmp_path / "home" / "cache" / "environments" / digest / "archive.tar.gz"
        assert len(relay.sent) > archive.stat().st_size  # the archive went over the wire once

        relay.sent.clear()
        done, second = cli_json("run", "-c", "local", "--json", "job.py", cwd=project, env=env)
        assert done.returncode == 0 and second["environment"]["digest"] == digest, done.stderr
        about = [r for r in relay.requests() if "/environments/" in r]
        assert about == [f"HEAD /{azurite.account}/{azurite_container}/team/environments/{digest}/COMPLETE"], about
        assert len(relay.sent) < archive.stat().st_size / 4  # the record and the log, never the archive again
    finally:
        relay.close()


def test_a_cluster_compute_without_python_version_builds_for_this_python_and_says_so(built):
    project = built["project"]
    storage = (project.parent / "cluster-storage").as_uri()
    write(project / "aml_config" / "hdi.compute", f"type: cluster\nlivy: http://127.0.0.1:9/livy\nstorage: {storage}\n")
    write(project / "aml_config" / "hdi.runconfig", "Target: hdi\nFramework: PySpark\nRequirementsFile: requirements.txt\n")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    done, info = cli_json("env", "build", "-c", "hdi", "--json", cwd=project, env=_env(built["home"]))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"sparkjobs: aml_config/hdi.compute names no pythonVersion, so the environment is built for this machine's "
        f"Python {python}; set pythonVersion to the cluster's (HDInsight 5.1 runs 3.8).")
    # The same file, platform and Python as the local runs: the same environment, resolved again by
    # 'env build' and found already built and stored.
    assert info["digest"] == built["record"]["environment"]["digest"] and info["stored_bytes"] == 0


def test_conda_specs_become_pip_requirements(tmp_path):
    from sparkjobs.environments.declare import read_conda, read_requirements

    conda = write(tmp_path / "c.yml", """
        dependencies:
          - python=3.8
          - numpy 1.24.*
          - conda-forge::pandas>=1.5
          - scikit-learn=1.3.2=py38h1234
          - msgpack-python
          - pip:
            - azureml-logging
            - ujson==5.10.0
        """)
    declared = read_conda(conda, "c.yml")
    assert declared.requirements == ("numpy==1.24.*", "pandas>=1.5", "scikit-learn==1.3.2.*", "msgpack", "ujson==5.10.0")
    assert declared.python == "3.8" and len(declared.notices) == 1 and "azureml-logging is ignored" in declared.notices[0]
    requirements = write(tmp_path / "requirements.txt", "# pins\ntabulate==0.9.0  # pure\n\n-r other.txt\nnot a requirement!\n")
    with pytest.raises(ConfigError) as refused:
        read_requirements(requirements, "requirements.txt")
    message = str(refused.value)  # one line, whatever packaging's own wording of the reason
    assert message.startswith(
        "The dependencies file requirements.txt has 2 problems: line 4 ('-r other.txt') is a pip option, which "
        "sparkjobs does not take there; line 5 ('not a requirement!') is not a requirement: ")
    assert "\n" not in message and message.endswith(".")


def test_a_rerun_uses_the_environment_its_snapshot_declares(built):
    no_pip = _env(built["home"], PIP_NO_INDEX="1", PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_FIND_LINKS="")
    done, record = cli_json("rerun", built["record"]["id"], "--json", cwd=built["project"], env=no_pip)
    assert done.returncode == 0, done.stderr
    assert record["environment"] == built["record"]["environment"] and record["details"]["rerun_of"] == built["record"]["id"]


def test_prepare_environment_false_builds_nothing_and_says_so(tmp_path):
    project = _project(tmp_path / "proj", "sparkjobs-no-such-package-x7q==1.0\n")  # pip would refuse it
    runconfig = project / "aml_config" / "local.runconfig"
    runconfig.write_text(runconfig.read_text() + "PrepareEnvironment: false\n")
    done, record = cli_json("run", "-c", "local", "--json", "job.py", cwd=project, env=_env(tmp_path / "home"))
    assert done.returncode == 0 and record["environment"] is None, done.stderr
    assert ("sparkjobs: aml_config/local.runconfig: key 'RequirementsFile' is ignored: no environment is prepared for "
            "this run (PrepareEnvironment is false in aml_config/local.runconfig): the job uses the packages the "
            "target's Python has") in done.stderr.splitlines()
    assert "not built" not in done.stderr  # said once, by the key's notice
    assert not (tmp_path / "home" / "cache" / "environments").exists()


def test_runs_compare_shows_which_packages_differ(built, tmp_path):
    project = built["project"]
    requirements = project / "requirements.txt"
    original = requirements.read_text()
    requirements.write_text(f"tabulate==0.8.10\n{NATIVE}\n")  # built by the pin-change test, or now
    try:
        done, other = cli_json("run", "-c", "local", "--json", "job.py", cwd=project, env=_env(built["home"]))
        assert done.returncode == 0, done.stderr
    finally:
        requirements.write_text(original)
    done, compared = cli_json("runs", "compare", built["record"]["id"], other["id"], "--json", cwd=project,
                              env=_env(built["home"]))
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in compared["config"]}
    assert rows["python packages"]["values"] == ["msgpack==1.0.8, tabulate==0.9.0", "msgpack==1.0.8, tabulate==0.8.10"]
    assert rows["python packages"]["differs"] and rows["environment"]["differs"]
