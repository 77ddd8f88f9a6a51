"""CLI behaviour that needs no Spark: init, a plain-Python run, lookups, dry runs."""
from __future__ import annotations

import json

import pytest

from helpers import cli, cli_json, make_project, signal_run_after, write


def test_init_copies_the_template_and_refuses_to_overwrite(tmp_path):
    done = cli("init", "--project", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "aml_config" / "local.compute").exists()
    assert (tmp_path / "aml_config" / "local.runconfig").exists()
    again = cli("init", "--project", str(tmp_path))
    assert again.returncode == 2 and again.stderr.startswith("Error:") and "--force" in again.stderr
    assert cli("init", "--force", "--project", str(tmp_path)).returncode == 0


def test_a_fresh_init_project_runs_its_template_config(tmp_path, isolated_home):
    # The template must validate as it is shipped; Framework Python keeps this test Spark-free.
    cli("init", "--project", str(tmp_path))
    runconfig = tmp_path / "aml_config" / "local.runconfig"
    runconfig.write_text(runconfig.read_text().replace("Framework: PySpark", "Framework: Python"))
    write(tmp_path / "hello.py", "print('hello from', __name__)\n")
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(tmp_path), "hello.py")
    assert done.returncode == 0, done.stderr
    assert record["status"] == "completed" and "hello from __main__" in done.stderr


@pytest.fixture
def python_project(tmp_path):
    project = make_project(tmp_path / "proj", tmp_path / "share", framework="Python")
    write(project / "ok.py", "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/a.txt','w').write('a')\nprint('done')\n")
    write(project / "boom.py", "raise RuntimeError('boom')\n")
    return project


def test_python_framework_runs_without_spark(python_project):
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(python_project), "ok.py")
    assert done.returncode == 0 and record["artifacts"][0]["path"] == "outputs/a.txt"
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(python_project), "boom.py")
    assert done.returncode == 1 and record["status"] == "failed" and record["exit_code"] == 1
    assert "RuntimeError: boom" in done.stderr


def test_run_ids_can_be_shortened_and_unknown_ids_are_clear(python_project):
    _, record = cli_json("run", "-c", "local", "--json", "--project", str(python_project), "ok.py")
    suffix = record["id"].split("-")[-1]
    done, shown = cli_json("runs", "show", suffix, "--json", "--project", str(python_project))
    assert shown["id"] == record["id"]
    missing = cli("runs", "show", "19990101T000000000Z-000000", "--project", str(python_project))
    assert missing.returncode == 2 and missing.stderr.startswith("Error: No run")


def test_runs_list_when_empty(python_project):
    done = cli("runs", "list", "--project", str(python_project))
    assert done.returncode == 0 and "No runs yet." in done.stdout


def test_dry_run_submits_and_records_nothing(python_project, isolated_home):
    done = cli("run", "-c", "local", "--dry-run", "--project", str(python_project), "ok.py", "--x", "1")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["script"] == "ok.py" and plan["args"] == ["--x", "1"]
    assert plan["env"]["AZUREML_NATIVE_SHARE_DIRECTORY"].endswith("/ws/demo/")
    assert not (isolated_home / "runs").exists()


def test_java_older_than_17_is_refused_with_a_clear_message(tmp_path, isolated_home):
    # Java 11 cannot be installed next to the machine's Java 17, so a stand-in `java` prints what
    # Java 11 prints; the version check itself is what is under test.
    fake_home = tmp_path / "jdk11"
    write(fake_home / "bin" / "java", '#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    (fake_home / "bin" / "java").chmod(0o755)
    project = make_project(tmp_path / "proj", tmp_path / "share")
    write(project / "job.py", "print('never')\n")
    import os

    env = dict(os.environ, JAVA_HOME=str(fake_home))
    done = cli("run", "-c", "local", "--project", str(project), "job.py", env=env)
    assert done.returncode == 2
    assert "Java 11" in done.stderr and "Java 17 or newer" in done.stderr
    assert not (isolated_home / "runs").exists()


def test_snapshot_over_the_cap_is_refused_before_anything_is_written(python_project, isolated_home):
    write(python_project / "aml_config" / "project.yml", "name: demo\nworkspace: ws\nsnapshotCapMB: 1\n")
    (python_project / "data.bin").write_bytes(b"x" * 2_000_000)
    done = cli("run", "-c", "local", "--project", str(python_project), "ok.py")
    assert done.returncode == 2 and "data.bin (2.0 MB)" in done.stderr and ".amlignore" in done.stderr
    assert not (isolated_home / "runs").exists()


def test_a_closed_stdout_does_not_orphan_the_run(python_project, isolated_home):
    # `sparkjobs run ... | head -1`: the reader goes away, the run must still finish and be recorded.
    import os
    import subprocess
    import sys

    write(python_project / "chatty.py", "for i in range(20000):\n    print('line', i)\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "sparkjobs.cli", "run", "-c", "local", "--project", str(python_project), "chatty.py"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=dict(os.environ),
    )
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=120) == 0
    done, runs = cli_json("runs", "list", "--json", "--project", str(python_project))
    assert runs[0]["status"] == "completed" and runs[0]["script"] == "chatty.py"
    log = (isolated_home / "runs" / runs[0]["id"] / "driver.log").read_text()
    assert "line 19999" in log


def test_sigterm_to_sparkjobs_stops_the_job_and_records_it(python_project, isolated_home):
    import signal

    write(python_project / "sleepy.py", "import time\nprint('STARTED', flush=True)\ntime.sleep(300)\n")
    code, out = signal_run_after(
        "STARTED", signal.SIGTERM, "run", "-c", "local", "--json", "--project", str(python_project), "sleepy.py"
    )
    assert code == 1
    assert json.loads(out)["status"] == "killed"
