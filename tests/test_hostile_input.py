"""Bad or hostile input through the real CLI: exit 2, one `Error:` line naming file and key (or
file and line), no traceback, and nothing written (no run record, no work folder, no share
folder). Each test here was an observed crash, hang or escape."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from sparkjobs.snapshot_store import SnapshotStore
from sparkjobs.storage.local import LocalStore

from helpers import cli, cli_json, make_project, write


@pytest.fixture
def share(tmp_path):
    return tmp_path / "share"


@pytest.fixture
def project(tmp_path, share):
    root = make_project(tmp_path / "proj", share, framework="Python")
    write(root / "train.py", "print('ran')\n")
    return root


def run_bounded(*args: str, memory_mb: int = 1024, timeout: int = 60) -> subprocess.CompletedProcess:
    """The CLI in a child that cannot take more than memory_mb of address space: a YAML bomb
    then ends in MemoryError instead of eating the machine, and the timeout stops a hang."""

    def limit() -> None:
        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return subprocess.run(
        [sys.executable, "-m", "sparkjobs.cli", *args],
        capture_output=True, text=True, env=dict(os.environ), timeout=timeout,
        stdin=subprocess.DEVNULL, preexec_fn=limit,
    )


def assert_refused(done: subprocess.CompletedProcess, home: Path, share: Path, *needles: str) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("Error: ") and done.stderr.count("Error:") == 1, done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr
    assert not (home / "runs").exists(), "a run record was written"
    assert not any((home / "work").glob("*")), "a work folder was left behind"
    assert not share.exists(), "a share folder was created"
    return done.stderr


def run_args(project: Path, script: str = "train.py") -> list[str]:
    return ["-c", "local", "--project", str(project), script]


# ---- 1. YAML alias bombs ------------------------------------------------------------------
def _bomb(levels: int = 9) -> str:
    lines = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        prev = f"*a{i - 1}"
        lines.append(f"  a{i}: &a{i} [{', '.join([prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_environment_variables_is_refused(project, isolated_home, share):
    write(project / "aml_config" / "local.runconfig", "Target: local\nFramework: Python\nEnvironmentVariables:\n" + _bomb())
    done = run_bounded("run", *run_args(project))
    assert_refused(done, isolated_home, share, "local.runconfig", "alias")


def test_alias_bomb_in_packages_is_refused(project, isolated_home, share):
    text = "bomb:\n" + _bomb() + "packages: *a8\n"
    write(project / "aml_config" / "spark_dependencies.yml", text)
    done = run_bounded("run", *run_args(project))
    assert_refused(done, isolated_home, share, "spark_dependencies.yml", "alias")


def test_a_few_ordinary_aliases_still_work(project, isolated_home):
    write(
        project / "aml_config" / "local.runconfig",
        "Target: local\nFramework: Python\nEnvironmentVariables:\n  A: &word one\n  B: *word\n",
    )
    write(project / "train.py", "import os; print(os.environ['A'] + os.environ['B'])\n")
    done = cli("run", *run_args(project))
    assert done.returncode == 0 and "oneone" in done.stdout, done.stderr


# ---- 2. duplicate keys ---------------------------------------------------------------------
def test_duplicate_key_is_refused_naming_the_key_and_both_lines(project, isolated_home, share):
    write(
        project / "aml_config" / "local.runconfig",
        "Target: local\nFramework: Python\nEnvironmentVariables:\n  MODE: safe\n  OTHER: x\n  MODE: reckless\n",
    )
    stderr = assert_refused(cli("run", *run_args(project)), isolated_home, share, "local.runconfig", "'MODE'")
    assert "lines 4 and 6" in stderr


def test_duplicate_top_level_key_in_compute_is_refused(project, isolated_home, share):
    write(project / "aml_config" / "local.compute", f"type: local\nnativeSharedDirectory: {share}/\ntype: local\n")
    stderr = assert_refused(cli("run", *run_args(project)), isolated_home, share, "local.compute", "'type'")
    assert "lines 1 and 3" in stderr


# ---- 3. ArgumentVector types ---------------------------------------------------------------
def test_argument_vector_of_numbers_is_refused(project, isolated_home, share):
    write(project / "aml_config" / "local.runconfig", "Target: local\nFramework: Python\nArgumentVector: [1, 2]\n")
    assert_refused(cli("run", *run_args(project)), isolated_home, share, "local.runconfig", "'ArgumentVector'", "quote")


def test_argument_vector_without_file_and_a_script_on_the_command_line_is_refused(project, isolated_home, share):
    write(project / "aml_config" / "local.runconfig", "Target: local\nFramework: Python\nArgumentVector: [other.py, --x]\n")
    write(project / "other.py", "print('other')\n")
    assert_refused(cli("run", *run_args(project)), isolated_home, share, "ArgumentVector", "$file")


def test_argument_vector_without_file_names_the_script(project, isolated_home):
    write(project / "aml_config" / "local.runconfig", "Target: local\nFramework: Python\nArgumentVector: [other.py, '1', '2']\n")
    write(project / "other.py", "import sys; print('argv', sys.argv[1:])\n")
    done, record = cli_json("run", "--json", "-c", "local", "--project", str(project))
    assert done.returncode == 0, done.stderr
    assert record["script"] == "other.py" and record["args"] == ["1", "2"]
    assert "argv ['1', '2']" in done.stderr


# ---- 4. project name and workspace are single path segments --------------------------------
@pytest.mark.parametrize("key", ["name", "workspace"])
@pytest.mark.parametrize("value", ["..", "../../escape", "ABSOLUTE", "a/b", "a\\\\b", ".", "''", '"a\\0b"'])
def test_project_name_and_workspace_must_be_one_path_segment(project, isolated_home, share, tmp_path, key, value):
    value = value.replace("ABSOLUTE", str(tmp_path / "absolute"))
    other = "workspace: ws" if key == "name" else "name: demo"
    write(project / "aml_config" / "project.yml", f"{key}: {value}\n{other}\n")
    assert_refused(cli("run", *run_args(project)), isolated_home, share, "project.yml", f"'{key}'")
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
    assert not (tmp_path / "absolute").exists()


# ---- 5. file names that are not UTF-8 ------------------------------------------------------
def test_non_utf8_file_name_is_refused_naming_it(project, isolated_home, share):
    with open(os.path.join(os.fsencode(project), b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"data\n")
    assert_refused(cli("run", *run_args(project)), isolated_home, share, "caf\\xe9.txt", ".amlignore")


def test_non_utf8_file_name_can_be_excluded(project, isolated_home):
    with open(os.path.join(os.fsencode(project), b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"data\n")
    write(project / ".amlignore", "caf*.txt\n")
    done = cli("run", *run_args(project))
    assert done.returncode == 0 and "ran" in done.stdout, done.stderr


# ---- 6 and 7. ignore files that are invalid or pathological --------------------------------
def test_amlignore_with_a_lone_backslash_is_refused_naming_the_line(project, isolated_home, share):
    write(project / ".amlignore", "*.tmp\n\\\n")
    assert_refused(cli("run", *run_args(project)), isolated_home, share, ".amlignore", "line 2")


def test_pathological_wildcards_are_refused_quickly(project, isolated_home, share):
    # Each of these takes Python's regex engine minutes against the names below.
    lines = [f"**/{'a*' * 10}b{i}" for i in range(2000)]
    write(project / ".amlignore", "\n".join(lines) + "\n")
    for i in range(20):
        write(project / "data" / ("a" * 60 + f"{i}.txt"), "x\n")
    done = run_bounded("run", *run_args(project), timeout=60)
    assert_refused(done, isolated_home, share, ".amlignore", "line 1", "wildcards")


def test_too_many_ignore_patterns_are_refused(project, isolated_home, share):
    write(project / ".gitignore", "".join(f"file{i}.tmp\n" for i in range(20_000)))
    assert_refused(cli("run", *run_args(project)), isolated_home, share, ".gitignore", "patterns")


def test_an_ordinary_large_gitignore_still_works(project, isolated_home):
    rules = ["*.py[cod]", "**/build/**/*.o", "/dist/", "*.egg-info/", ".*.sw?", "src/**/test_*.py", "!keep.log", "*.log"]
    write(project / ".gitignore", "\n".join(rules * 60) + "\n")
    done = cli("run", *run_args(project))
    assert done.returncode == 0 and "ran" in done.stdout, done.stderr


# ---- 8. environment values over the kernel's limits ----------------------------------------
def test_huge_environment_value_is_refused_before_anything_is_written(project, isolated_home, share):
    big = "x" * 3_000_000
    write(project / "aml_config" / "local.runconfig", f"Target: local\nFramework: Python\nEnvironmentVariables:\n  BIG: {big}\n")
    stderr = assert_refused(cli("run", *run_args(project)), isolated_home, share, "local.runconfig", "'BIG'")
    assert len(stderr) < 2000  # the value itself is not echoed


def test_environment_total_over_the_limit_is_refused(project, isolated_home, share):
    values = "".join(f"  V{i}: {'y' * 100_000}\n" for i in range(30))  # each fine, 3 MB together
    write(project / "aml_config" / "local.runconfig", f"Target: local\nFramework: Python\nEnvironmentVariables:\n{values}")
    assert_refused(cli("run", *run_args(project)), isolated_home, share, "local.runconfig", "'EnvironmentVariables'")


def test_environment_names_with_equals_or_nul_are_refused(project, isolated_home, share):
    write(project / "aml_config" / "local.runconfig", 'Target: local\nFramework: Python\nEnvironmentVariables:\n  "A=B": x\n  C: "a\\0b"\n')
    assert_refused(cli("run", *run_args(project)), isolated_home, share, "local.runconfig", "'A=B'", "'C'")


# ---- 9. the configuration a run used is always in its snapshot -----------------------------
@pytest.mark.parametrize("ignore", ["aml_config/\n", "**\n!train.py\n", "*.yml\n*.runconfig\n*.compute\n"])
def test_config_is_kept_in_the_snapshot_whatever_amlignore_says(project, isolated_home, tmp_path, ignore):
    write(project / ".amlignore", ignore)
    write(project / "aml_config" / "unused.runconfig", "Target: local\n")
    done, record = cli_json("run", "--json", *run_args(project))
    assert done.returncode == 0, done.stderr
    restored = tmp_path / "restored"
    SnapshotStore(LocalStore(isolated_home)).restore(record["snapshot"], restored)
    for name in ("local.runconfig", "local.compute", "spark_dependencies.yml", "project.yml"):
        assert (restored / "aml_config" / name).read_bytes() == (project / "aml_config" / name).read_bytes()
    assert not (restored / "aml_config" / "unused.runconfig").exists()  # only what the run used


# ---- 10. the code that runs is the snapshot that is recorded -------------------------------
def test_same_size_edit_with_restored_mtime_runs_the_recorded_snapshot(project, isolated_home, tmp_path):
    script = project / "train.py"
    write(project / "lib.txt", "version-1\n")
    write(script, "print('LIB=' + open('lib.txt').read().strip())\n")
    first, record1 = cli_json("run", "--json", *run_args(project))
    assert first.returncode == 0 and "LIB=version-1" in first.stderr, first.stderr
    before = (project / "lib.txt").stat()
    (project / "lib.txt").write_text("version-2\n")  # same size
    os.utime(project / "lib.txt", ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p, rsync -a do
    second, record2 = cli_json("run", "--json", *run_args(project))
    assert second.returncode == 0, second.stderr
    ran = [line for line in second.stderr.splitlines() if line.startswith("LIB=")]
    restored = tmp_path / "restored"
    SnapshotStore(LocalStore(isolated_home)).restore(record2["snapshot"], restored)
    recorded = (restored / "lib.txt").read_text().strip()
    assert ran == [f"LIB={recorded}"]
    assert recorded == "version-2" and record2["snapshot"] != record1["snapshot"]
    manifest = json.loads((isolated_home / "snapshots" / record2["snapshot"] / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} >= {"train.py", "lib.txt"}
