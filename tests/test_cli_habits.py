"""The habits people bring from git, az and databricks, through the real CLI (issue 8, items 2
and 3): the project is found from any folder inside it, output says each thing once with
plurals and punctuation right, a closed pipe is quiet, and the parser never shows its own
internals. Framework Python keeps these runs Spark-free; the text asserted is what a user sees."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli, cli_json, make_project, write
from sparkjobs.cli import _parser
from sparkjobs.runs import RunRecord, RunRepository, RunStatus
from sparkjobs.storage.local import LocalStore

OK = "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/a.txt', 'w').write('a')\nprint('done')\n"


@pytest.fixture
def project(tmp_path):
    root = make_project(tmp_path / "proj", tmp_path / "share", framework="Python")
    write(root / "hello.py", OK)
    write(root / "sub" / "deeper" / "here.py", "print('from a subfolder')\n")
    return root.resolve()


def _summary(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("sparkjobs: ")]


# ---- item 2: find the project the way git finds its repository -----------------------------

def test_run_from_a_subfolder_finds_the_project_and_takes_the_script_relative_to_the_cwd(project):
    done = cli("run", "-c", "local", "../hello.py", cwd=project / "sub")
    assert done.returncode == 0, done.stderr
    _, runs = cli_json("runs", "list", "--json", cwd=project / "sub" / "deeper")
    assert runs[0]["script"] == "hello.py" and runs[0]["project"] == "demo"
    run_id = runs[0]["id"]
    assert _summary(done)[-2:] == [
        f"sparkjobs: Run {run_id} completed.",
        f"sparkjobs: 1 artifact stored; see 'sparkjobs runs show {run_id}'.",
    ]
    done = cli("run", "-c", "local", "here.py", cwd=project / "sub" / "deeper")
    assert done.returncode == 0 and "from a subfolder" in done.stdout, done.stderr
    _, shown = cli_json("runs", "show", "--json", cli_json("runs", "list", "--json", cwd=project)[1][0]["id"], cwd=project / "sub")
    assert shown["script"] == "sub/deeper/here.py"


def test_a_script_outside_the_project_is_refused(project, tmp_path, isolated_home):
    write(tmp_path / "elsewhere.py", "print('no')\n")
    done = cli("run", "-c", "local", "../../elsewhere.py", cwd=project / "sub")
    assert done.returncode == 2
    assert done.stderr == f"Error: The script ../../elsewhere.py is outside the project {project}.\n"
    assert not (isolated_home / "runs").exists()


def test_outside_any_project_run_says_where_it_looked_and_creates_nothing(tmp_path, isolated_home):
    bare = (tmp_path / "bare").resolve()
    bare.mkdir()
    write(bare / "hello.py", OK)
    done = cli("run", "-c", "local", "hello.py", cwd=bare)
    assert done.returncode == 2
    assert done.stderr == (
        f"Error: No sparkjobs project in {bare} or any folder above it (none has aml_config/). "
        f"Run 'sparkjobs init' to make {bare} a project, or name one with --project DIR.\n"
    )
    assert not (isolated_home / "runs").exists() and not (bare / "aml_config").exists()


def test_project_is_accepted_before_and_after_the_command(project, tmp_path):
    assert cli("run", "-c", "local", "--project", str(project), "hello.py", cwd=tmp_path).returncode == 0
    before = cli("--project", str(project), "runs", "list", "--json", cwd=tmp_path)
    after = cli("runs", "list", "--json", "--project", str(project), cwd=tmp_path)
    middle = cli("runs", "--project", str(project), "list", "--json", cwd=tmp_path)
    inner = cli("runs", "list", "--json", "--project", str(project / "sub"), cwd=tmp_path)  # a folder inside it
    assert before.returncode == after.returncode == middle.returncode == inner.returncode == 0, before.stderr
    assert len(json.loads(before.stdout)) == 1
    assert before.stdout == after.stdout == middle.stdout == inner.stdout
    assert before.stderr == after.stderr == middle.stderr == inner.stderr == ""
    # Given both, the one after the command wins, as the closer one.
    both = cli("--project", str(tmp_path), "runs", "list", "--json", "--project", str(project), cwd=tmp_path)
    assert both.stdout == before.stdout


def test_a_missing_project_folder_is_an_error(tmp_path):
    done = cli("runs", "list", "--project", str(tmp_path / "nope"), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr == f"Error: The project folder {tmp_path / 'nope'} does not exist.\n"


def test_runs_list_outside_any_project_says_it_shows_every_project(project, tmp_path):
    assert cli("run", "-c", "local", "hello.py", cwd=project).returncode == 0
    other = make_project(tmp_path / "other", tmp_path / "share", framework="Python")
    write(other / "aml_config" / "project.yml", "name: other\n")
    write(other / "hi.py", "print('hi')\n")
    assert cli("run", "-c", "local", "hi.py", cwd=other).returncode == 0
    outside = (tmp_path / "outside").resolve()
    outside.mkdir()
    done = cli("runs", "list", cwd=outside)
    assert done.returncode == 0
    assert done.stderr == (
        f"Not inside a sparkjobs project (no aml_config/ in {outside} or above): showing the runs of every project.\n"
    )
    assert [line.split()[1] for line in done.stdout.splitlines()[1:]] == ["other", "demo"]
    listed = cli("runs", "list", "--json", cwd=outside)
    assert listed.stderr == done.stderr and len(json.loads(listed.stdout)) == 2
    # --all asks for exactly that: nothing to point out; inside a project, only its runs
    assert cli("runs", "list", "--all", cwd=outside).stderr == ""
    inside = cli("runs", "list", cwd=other / "aml_config")
    assert inside.stderr == "" and [line.split()[1] for line in inside.stdout.splitlines()[1:]] == ["other"]


def test_init_makes_the_current_folder_a_project_and_refuses_a_nested_one(project, tmp_path):
    fresh = (tmp_path / "fresh").resolve()
    fresh.mkdir()
    done = cli("init", cwd=fresh)
    assert done.returncode == 0 and (fresh / "aml_config" / "local.runconfig").is_file()
    assert f"created {fresh / 'aml_config' / 'local.runconfig'}\n" in done.stdout

    nested = cli("init", cwd=project / "sub")
    assert nested.returncode == 2
    assert nested.stderr == (
        f"Error: {project / 'sub'} is inside the project {project}, which sparkjobs commands run there already use. "
        "To create a separate project nested in it anyway, use --force.\n"
    )
    assert not (project / "sub" / "aml_config").exists()
    assert cli("init", "--project", str(project / "sub" / "deeper"), cwd=tmp_path).returncode == 2
    forced = cli("init", "--force", cwd=project / "sub")
    assert forced.returncode == 0 and (project / "sub" / "aml_config" / "local.runconfig").is_file()


def test_init_names_the_one_file_in_the_way(tmp_path):
    folder = tmp_path.resolve()
    write(folder / "aml_config" / "local.compute", "type: local\n")
    done = cli("init", cwd=folder)
    assert done.returncode == 2
    assert done.stderr == f"Error: {folder / 'aml_config' / 'local.compute'} already exists; use --force to overwrite it.\n"


# ---- item 3: output -------------------------------------------------------------------------

def test_plurals_in_the_snapshot_and_artifact_lines(project):
    first = cli("run", "-c", "local", "hello.py", cwd=project)
    assert first.returncode == 0, first.stderr
    write(project / "two.py", OK.replace("'outputs/a.txt'", "'outputs/b.txt'") + "open('outputs/a.txt', 'w').write('a')\n")
    second = cli("run", "-c", "local", "two.py", cwd=project)
    assert second.returncode == 0, second.stderr
    snapshot = [line for line in _summary(second) if line.startswith("sparkjobs: Snapshot ")]
    # two.py is the one new file (its manifest is stored too, and counts in the size)
    assert len(snapshot) == 1 and re.fullmatch(r"sparkjobs: Snapshot [0-9a-f]{12}: stored 1 new file \((\d+ bytes|\d+\.\d kB)\)\.", snapshot[0]), snapshot
    run_id = cli_json("runs", "list", "--json", cwd=project)[1][0]["id"]
    assert _summary(second)[-1] == f"sparkjobs: 2 artifacts stored; see 'sparkjobs runs show {run_id}'."


def test_a_failed_run_says_how_it_ended_once(project):
    write(project / "fail.py", "import sys\nprint('about to fail')\nsys.exit(1)\n")
    done = cli("run", "-c", "local", "fail.py", cwd=project)
    assert done.returncode == 1
    run_id = cli_json("runs", "list", "--json", cwd=project)[1][0]["id"]
    assert _summary(done)[-1] == f"sparkjobs: Run {run_id} failed. The job exited with code 1."
    assert sum("code 1" in line for line in done.stderr.splitlines()) == 1, done.stderr


def test_no_doubled_punctuation_after_a_suggestion(project):
    compute = project / "aml_config" / "local.compute"
    compute.write_text(compute.read_text().replace("master:", "mastr:"))
    done = cli("run", "-c", "local", "hello.py", cwd=project)
    assert done.returncode == 2
    assert done.stderr == f"Error: Invalid configuration: {compute}: unknown key 'mastr'; did you mean 'master'?\n"


def _many_records(home: Path, count: int) -> None:
    """Records as a real run store holds them, written through the real repository: enough that
    a listing overflows the pipe and its reader goes away mid-way."""
    repo = RunRepository(LocalStore(home))
    for number in range(count):
        repo.save(RunRecord(id=f"20260101T000000{number:03d}Z-{number:06x}", project="demo", target="local",
                            script="job.py", args=("--n", str(number)), status=RunStatus.COMPLETED,
                            started_at="2026-01-01T00:00:00.000Z", snapshot="0" * 64, exit_code=0))


def _piped_to_head(*args: str, cwd: Path, both: bool = False) -> tuple[int, str, str]:
    """`sparkjobs ARGS | head -1` (with ``both``, `2>&1 | head -1`): read one line, then close
    the pipe. Bounded: the process is killed by its pid if it outlives the wait."""
    process = subprocess.Popen([sys.executable, "-m", "sparkjobs.cli", *args], cwd=cwd, env=dict(os.environ),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT if both else subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    first = process.stdout.readline()
    process.stdout.close()
    try:
        errors = "" if both else process.stderr.read()
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return code, first, errors


def test_a_reader_that_goes_away_never_causes_a_traceback(project, isolated_home):
    write(project / "chatty.py", "for i in range(200000):\n    print('line', i)\n")
    assert cli("run", "-c", "local", "chatty.py", cwd=project).returncode == 0
    run_id = cli_json("runs", "list", "--json", cwd=project)[1][0]["id"]
    code, first, errors = _piped_to_head("runs", "show", run_id, "--log", cwd=project)
    assert (code, first, errors) == (141, f"id:         {run_id}\n", "")

    _many_records(isolated_home, 1500)  # about 140 kB of table: more than a pipe holds
    assert "Reading 1,500 run records" in cli("runs", "list", "--last", "1", cwd=project).stderr  # the index, built once
    code, first, errors = _piped_to_head("runs", "list", "--limit", "0", cwd=project)
    assert (code, first.split(), errors) == (141, ["RUN", "ID", "PROJECT", "TARGET", "STATUS", "STARTED", "SCRIPT"], "")
    code, first, errors = _piped_to_head("runs", "list", "--limit", "0", "--json", cwd=project)
    assert (code, first, errors) == (141, "[\n", "")


def test_a_run_whose_reader_goes_away_ends_with_its_jobs_exit_code(project):
    write(project / "chatty.py", "for i in range(100000):\n    print('line', i)\n")
    code, first, _ = _piped_to_head("run", "-c", "local", "chatty.py", cwd=project, both=True)
    assert code == 0 and first.startswith("sparkjobs: Snapshot ")
    _, runs = cli_json("runs", "list", "--json", cwd=project)
    assert (runs[0]["script"], runs[0]["status"], runs[0]["exit_code"]) == ("chatty.py", "completed", 0)


def test_a_bare_sparkjobs_prints_the_help(tmp_path):
    done = cli(cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: sparkjobs [-h] [--project DIR] [--version] COMMAND ...\n")
    for line in ("    run          run a script in a fresh snapshot of the project",
                 "    runs         the run history", "    artifacts    a run's outputs"):
        assert line + "\n" in done.stdout
    group = cli("artifacts", cwd=tmp_path)
    assert group.returncode == 0 and group.stdout.startswith("usage: sparkjobs artifacts [-h] [--project DIR] COMMAND ...\n")
    assert "    download     download an artifact or a folder of them\n" in group.stdout


def test_usage_errors_never_show_internal_names(tmp_path):
    cases = {
        ("artifacts", "download"): "Error: The following arguments are required: RUN_ID.",
        ("runs", "show"): "Error: The following arguments are required: RUN_ID.",
        ("runs", "bogus"): "Error: 'bogus' is not a 'sparkjobs runs' command; choose from list, compare, show, attach, recover.",
        ("bogus",): "Error: 'bogus' is not a 'sparkjobs' command; choose from run, rerun, restore, runs, artifacts, env, ui, init, config.",
        ("env", "build"): "Error: The following arguments are required: -c/--config.",
        ("env", "bogus"): "Error: 'bogus' is not a 'sparkjobs env' command; choose from build, show.",
        ("restore", "abc"): "Error: The following arguments are required: -o/--output.",
        ("run", "hello.py"): "Error: The following arguments are required: -c/--config.",
        ("runs", "list", "--limit", "-1"): "Error: Argument --limit: must be 0 or more, not -1.",
        ("ui", "--port", "70000"): "Error: Argument --port: must be a port number from 0 to 65535, not 70000.",
    }
    for args, error in cases.items():
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 2, args
        usage, last = done.stderr.rsplit("\n", 2)[0], done.stderr.splitlines()[-1]
        assert last == error and usage.startswith("usage: sparkjobs"), done.stderr
        for internal in ("_command", "run_id", "command:", "dest"):
            assert internal not in done.stderr, (args, done.stderr)


def _every_parser(parser: argparse.ArgumentParser, path: str = "sparkjobs"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _every_parser(child, f"{path} {name}")


def test_every_option_and_argument_has_help_text():
    missing, commands = [], 0
    for path, parser in _every_parser(_parser()):
        commands += 1
        for action in parser._actions:
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {choice.dest}" for choice in action._choices_actions if not choice.help]
    assert missing == []
    # sparkjobs, run, rerun, restore, runs (list compare show attach recover), artifacts (download), env (build show),
    # ui, init, config (check)
    assert commands == 19
