"""What `sparkjobs run` loads: every module imported on the way to a submission is paid for on
every run (issue 9's submission benchmark, bench/hdi_submission.py). These tests pin what the
run path must not import, without timing anything: the real CLI runs in a subprocess and its
``sys.modules`` is read at exit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pathspec
import pytest

from sparkjobs.snapshot import ALWAYS_EXCLUDED
from sparkjobs.snapshot_ignore import FixedExclusions

from helpers import make_project, write

# Runs the CLI as `python -m sparkjobs.cli` does, then writes the names of the loaded modules.
_WRAPPER = """
import atexit, json, runpy, sys
out, sys.argv = sys.argv[1], ["sparkjobs", *sys.argv[2:]]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
runpy.run_module("sparkjobs.cli", run_name="__main__", alter_sys=True)
"""

#: Needed by other commands only (the web page, the run index and compare), or not at all.
NOT_FOR_A_RUN = ("sparkjobs.ui", "jinja2", "sqlite3", "sparkjobs.history.index", "sparkjobs.history.sync",
                 "sparkjobs.history.compare", "sparkjobs.cli_history", "difflib", "rich.progress", "packaging")


def loaded_by(tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    env = {**os.environ, "SPARKJOBS_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", _WRAPPER, str(out), *args], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text()))


def unwanted(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.fixture
def project(tmp_path):
    root = make_project(tmp_path / "proj", tmp_path / "share")
    write(root / "job.py", "print('hi')\n")
    write(root / "aml_config" / "lc.compute", f"type: cluster\nlivy: http://127.0.0.1:9\nstorage: {tmp_path / 'store'}\n")
    write(root / "aml_config" / "lc.runconfig", 'Target: lc\nFramework: PySpark\nArgumentVector: ["$file"]\n')
    return root


def test_a_local_run_loads_no_history_ui_http_or_ignore_matcher(project, tmp_path):
    modules = loaded_by(tmp_path, "run", "--project", str(project), "-c", "local", "--dry-run", "job.py")
    assert "sparkjobs.run_flow" in modules  # the run path was really taken
    # No ignore file: pathspec (with the asyncio it loads) is not needed; nor is any HTTP stack.
    assert unwanted(modules, (*NOT_FOR_A_RUN, "pathspec", "azure", "requests", "charset_normalizer", "livy")) == []


def test_a_cluster_run_with_local_storage_loads_no_azure_sdk(project, tmp_path):
    modules = loaded_by(tmp_path, "run", "--project", str(project), "-c", "lc", "--dry-run", "job.py")
    assert "sparkjobs.targets.cluster" in modules
    assert unwanted(modules, (*NOT_FOR_A_RUN, "pathspec", "azure")) == []


def test_an_ignore_file_still_loads_pathspec(project, tmp_path):
    write(project / ".amlignore", "data/\n")
    modules = loaded_by(tmp_path, "run", "--project", str(project), "-c", "local", "--dry-run", "job.py")
    assert "pathspec" in modules


def test_runs_list_loads_only_the_history_path(tmp_path):
    """`runs list` answers from the run index: every module the run path or the config needs is
    start-up time it would pay on each list (issue 10's 0.3 s at 10,000 runs)."""
    elsewhere = tmp_path / "not-a-project"
    elsewhere.mkdir()
    modules = loaded_by(tmp_path, "runs", "list", "--all", "--project", str(elsewhere))
    assert "sparkjobs.history.index" in modules  # the index was really read
    assert unwanted(modules, ("yaml", "sparkjobs.config", "sparkjobs.snapshot", "sparkjobs.run_flow", "sparkjobs.metrics",
                              "sparkjobs.artifact_view", "sparkjobs.targets", "requests", "azure", "pathspec")) == []


def test_runs_list_in_a_project_reads_project_yml_without_the_run_configuration_code(project, tmp_path):
    """In a project `runs list` needs project.yml (its name and run store), not the code that
    reads a run configuration and Workbench's keys: about 30 ms of every list."""
    write(project / "aml_config" / "project.yml", "name: listed\nworkspace: team\n")
    modules = loaded_by(tmp_path, "runs", "list", "--project", str(project))
    assert "sparkjobs.project_config" in modules and "yaml" in modules  # project.yml was really read
    assert unwanted(modules, ("sparkjobs.config", "sparkjobs.config_models", "sparkjobs.workbench_keys",
                              "sparkjobs.workbench_docker", "sparkjobs.packages", "sparkjobs.snapshot",
                              "sparkjobs.run_flow", "sparkjobs.targets", "requests", "azure", "pathspec")) == []


@pytest.mark.parametrize("path", [
    "outputs/", "outputs/a.txt", "src/outputs/", "src/outputs/deep/x.py", "outputs.py", "my_outputs/", "outputsx/a",
    ".git/", ".git/HEAD", "a/.git/config", ".gitignore", ".sparkjobs/", "x/.sparkjobs/run.json",
    "__pycache__/", "pkg/__pycache__/m.cpython-311.pyc", "m.pyc", "pkg/m.pyc", "pyc", "m.pyc.txt", ".pyc", "d.pyc/x",
    "home/", "home/runs/r.json", "a/home/", "homer/x", "home", "train.py", "lib/util.py",
])
def test_fixed_exclusions_match_as_gitignore_does(path):
    patterns = [*ALWAYS_EXCLUDED, "/home/"]
    assert FixedExclusions(patterns).match_file(path) == pathspec.GitIgnoreSpec.from_lines(patterns).match_file(path)


def test_the_credentials_file_is_parsed_once_per_content(tmp_path, monkeypatch):
    from sparkjobs import credentials

    parses = []
    real = credentials.yaml.safe_load
    monkeypatch.setattr(credentials.yaml, "safe_load", lambda text: parses.append(1) or real(text))  # a counter only
    path = tmp_path / "user" / "credentials.yaml"
    write(path, "livy:\n  https://c.example/livy: {password: first-password-123}\n")
    path.chmod(0o600)
    environ = {"SPARKJOBS_CREDENTIALS": str(path)}
    # What a cluster submission asks of it: the Livy password, then every secret to mask.
    assert credentials.livy_password("https://c.example/livy", environ) == "first-password-123"
    assert "first-password-123" in credentials.known_secrets(environ)
    assert len(parses) == 1
    write(path, "livy:\n  https://c.example/livy: {password: second-password-456}\n")  # a new content is read anew
    assert credentials.livy_password("https://c.example/livy", environ) == "second-password-456"
    assert len(parses) == 2
