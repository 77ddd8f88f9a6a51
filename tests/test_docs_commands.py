"""Every command the README and the templates show, run as written (issue 8, item 5).

The commands are read from README.md, the template ``aml_config/`` and ``spark-conf/``, and the
sample project ``examples/iris/`` (its README, its ``aml_config/`` and its scripts' docstrings):
indented code lines and inline code that start with ``sparkjobs``, ``spark-submit``, ``python``,
``pip``, ``bash`` or ``cd``. Each one is either in ``RUN``, which says where it runs and with
which exit code, or in ``NOT_RUN`` with the reason; a command in neither fails
``test_every_documented_command_is_run_or_has_a_reason``, so a new or changed command is never
skipped silently.

``RUN`` commands run through bash exactly as written (``sparkjobs`` is this checkout's CLI), in
sessions: a folder and a fresh ``HOME`` and ``SPARKJOBS_HOME`` each, the commands of one session
in order (``RUN_ID`` is the session's latest run), the sessions side by side. Local runs use
real spark-submit; the cluster commands run against the Livy-protocol test server (its
``python`` runner runs the bootstrap without Spark), with the compute and run configuration made
from the ``*.example`` templates by filling in their placeholders.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import site
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from gateway import Gateway, make_tls
from livy_server import LivyTestServer

from helpers import REPO, make_project, write

TOOLS = ("sparkjobs", "spark-submit", "python", "python3", "pip", "bash", "cd")
_COMMAND = re.compile(rf"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:{'|'.join(map(re.escape, TOOLS))})\s+\S")
_INLINE = re.compile(r"`([^`\n]+)`")
_COMMENT = re.compile(r"\s+#\s.*$")

LIVY_USER, LIVY_PASSWORD = "admin", "docs-test-password"


@dataclass(frozen=True)
class Check:
    session: str
    exit_code: int = 0
    folder: str = ""  # inside the session's folder


# Where each documented command runs, in order within its session.
RUN: dict[str, Check] = {
    # README, "Set up on a new machine": from the repository's top folder.
    "sparkjobs run --project examples/iris -c local train.py --alpha 0.5": Check("repo"),
    # examples/iris/README.md, "Run it with bare spark-submit": from the sample's folder.
    "AZUREML_NATIVE_SHARE_DIRECTORY=/tmp/share/ SPARKJOBS_OUTPUTS=$PWD/outputs SPARKJOBS_SHARED=/tmp/share/ "
    "spark-submit --master 'local[*]' train.py --alpha 0.5": Check("repo", folder="examples/iris"),
    # README, "Using it": a project with a train.py (the sample's scripts and data) but no
    # aml_config/ yet; examples/iris/README.md's list and download run here too.
    "sparkjobs --version": Check("project"),
    "sparkjobs runs": Check("project"),  # bare: prints its help, exit 0
    "sparkjobs artifacts": Check("project"),
    "sparkjobs init": Check("project"),
    "sparkjobs run -c local train.py --alpha 0.5": Check("project"),
    "sparkjobs run -c local train.py --alpha 0.01": Check("project"),
    "sparkjobs runs list": Check("project"),
    "sparkjobs runs list | head -1": Check("project"),
    "sparkjobs runs show RUN_ID --log": Check("project"),
    "sparkjobs runs list --status failed --last 20": Check("project"),
    "sparkjobs runs list --sort -accuracy": Check("project"),
    "sparkjobs runs compare RUN_ID OTHER_ID": Check("project"),  # the two runs of train.py above
    "sparkjobs artifacts download RUN_ID outputs/model.pkl -o ./here": Check("project"),
    "sparkjobs artifacts download RUN_ID outputs/metrics.json": Check("project"),
    # The sample project as it is.
    "sparkjobs run -c local train.py": Check("iris"),
    "sparkjobs run -c local fail.py": Check("iris", exit_code=1),  # fail.py exits 3: a failed run
    "sparkjobs run -c local ../train.py": Check("iris", folder="data"),  # from a subfolder
    "sparkjobs runs show RUN_ID": Check("iris"),
    "sparkjobs artifacts download RUN_ID outputs/model -o saved": Check("iris"),
    "spark-submit fail.py; echo $?": Check("iris"),
    # A run whose sparkjobs process was killed (kill -9) while its job ran: a lost run.
    "sparkjobs runs recover RUN_ID": Check("lost", exit_code=1),  # settled as killed
    # Cluster targets made from the templates, against the Livy test server.
    "sparkjobs run -c myhdi --dry-run train.py": Check("cluster"),
    "sparkjobs run -c myhdi train.py --alpha 0.5": Check("cluster"),
    "sparkjobs run -c myhdi --detach train.py": Check("cluster"),
    "sparkjobs runs attach RUN_ID": Check("cluster"),
    "sparkjobs run -c cluster train.py": Check("cluster"),
    # issue 10: the last run's stored snapshot again, then on another configuration with new
    # arguments, then written out.
    "sparkjobs rerun RUN_ID": Check("cluster"),
    "sparkjobs rerun RUN_ID -c myhdi -- --alpha 0.1": Check("cluster"),
    "sparkjobs restore RUN_ID -o old-code": Check("cluster"),
}

NOT_RUN: dict[str, str] = {
    "sparkjobs run": "the command named in a sentence, not a command line",
    "pip install": "pip named in a sentence",
    "pip install --user": "an option named in a sentence; tests/test_install.py installs the wheel with --user",
    "python3 -m venv .venv": "makes the virtual environment the tests already run in; tests/test_install.py makes its own",
    "sparkjobs COMMAND --help": "a synopsis (COMMAND is a placeholder); tests/test_cli_habits.py checks every command's help",
    "sparkjobs artifacts download RUN_ID outputs/numbers -o ./here":
        "an example folder no documented run writes; folder downloads run here as 'outputs/model -o saved' and in "
        "tests/test_artifacts_view.py",
    "sparkjobs run … | head": "the shape of a command line in a sentence (… is the rest of it)",
    "spark-submit train.py [--alpha 0.01] [--l1-ratio 0.0] [--test-fraction 0.3] [--seed 42]":
        "a usage synopsis ([...] is optional); bare spark-submit of train.py runs above",
    "python3 -m pip install -e '.[examples]'": "installs sparkjobs: the tests run in that installation",
    "pip install 'sparkjobs[azure]'": "installs an extra: the tests run with the test extras installed",
    "pip install 'sparkjobs[identity]'": "installs an extra (azure-identity), which the tests do not use",
    "pip install matplotlib": "installs a package: the test extras include it",
    "sparkjobs env build -c myhdi": "builds with real pip against the package index; tests/test_environments.py runs "
        "'env build' and 'env show' on projects that declare dependencies",
    "sparkjobs env show -c myhdi": "tests/test_environments.py runs it after 'env build'",
    "bash tests/run": "runs this test suite",
    "bash tests/run -m \"not spark\"": "runs this test suite",
    "bash .ci/run": "runs this test suite",
    "cd my-project": "the folder the commands after it run in: the 'project' session's folder",
    "sparkjobs run -c local score.py run:latest/outputs/model.pkl":
        "the sample has no scoring script; tests/test_reuse.py runs run: references on every target",
    "sparkjobs run -c local score.py --model=run:best:accuracy/outputs/model.pkl":
        "the sample has no scoring script; tests/test_reuse.py runs run:best references",
    "sparkjobs run -c myhdi score.py run:3f9c2a/outputs/model":
        "an example run id; tests/test_reuse.py runs references on the cluster target",
    "sparkjobs ui": "serves until Ctrl-C; tests/test_ui_server.py and tests/test_ui_browser.py start it (with --port 0) "
        "and drive it over HTTP and in headless chromium",
    "sparkjobs ui --port 9000 --all": "serves until Ctrl-C; tests/test_ui_server.py starts it with --port",
    "pip install 'sparkjobs[ui]'": "installs an extra: the test extras include jinja2",
    "python bench/overhead.py": "a benchmark that takes minutes, not a check",
    "python bench/livy_polling.py": "a benchmark, not a check",
    "python bench/livy_end_latency.py": "a benchmark, not a check",
    "python bench/hdi_submission.py": "a benchmark on HDInsight in a box, not a check",
    "python bench/hdi_end_latency.py": "a benchmark on HDInsight in a box, not a check",
    "python bench/hdi_whole_run.py": "a benchmark on HDInsight in a box, not a check",
    "python bench/env.py": "a benchmark against the real package index, not a check",
    "pip install --target … --platform … --python-version … --only-binary=:all:":
        "the shape of the pip command sparkjobs runs, in a sentence; tests/test_environments.py runs it through sparkjobs",
    "bash bench/history": "a benchmark that takes many minutes (it writes 10,000 runs), not a check",
    "sparkjobs config check -c local": "needs a Workbench project: tests/test_workbench_config.py runs it on "
        "tests/workbench_projects/iris",
    "sparkjobs config check -c local --json": "tests/test_workbench_config.py runs it on every fixture run configuration",
    "sparkjobs run -c local script.py": "a Workbench project's script, named in a sentence; tests/test_workbench_runs.py "
        "runs tests/workbench_projects/iris this way, unedited",
    "sparkjobs init --from-docker docker": "tests/test_workbench_config.py runs it on the fixture's Docker target",
}


# --- reading the commands ------------------------------------------------------------------------


def _doc_files() -> list[Path]:
    iris = REPO / "examples" / "iris"
    return [
        REPO / "README.md",
        *sorted(path for path in (REPO / "aml_config").iterdir() if path.is_file()),
        *sorted(path for path in (REPO / "spark-conf").iterdir() if path.is_file()),
        *sorted(path for path in iris.rglob("*") if path.is_file() and "data" not in path.relative_to(iris).parts),
    ]


def _text(path: Path) -> str:
    """What a reader sees as documentation: a script's docstring, any other file whole."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return ast.get_docstring(ast.parse(text), clean=False) or ""
    return text


def documented_commands() -> dict[str, list[str]]:
    """Each command, once, with where it is shown (``file:line``)."""
    found: dict[str, list[str]] = {}
    for path in _doc_files():
        lines = _text(path).replace("\\\n", " ").splitlines()  # a continued line is one command
        for number, line in enumerate(lines, 1):
            pieces = _INLINE.findall(line)
            code = _INLINE.sub("", line)
            if code.startswith("    ") or path.suffix == ".py":  # a code block, or a docstring's line
                pieces.append(_COMMENT.sub("", code).strip())
            for piece in pieces:
                for command in piece.split(" && "):
                    command = " ".join(command.split())
                    if _COMMAND.match(command):
                        found.setdefault(command, []).append(f"{path.relative_to(REPO)}:{number}")
    return found


def test_every_documented_command_is_run_or_has_a_reason():
    documented = documented_commands()
    unchecked = {command: where for command, where in documented.items() if command not in RUN and command not in NOT_RUN}
    assert unchecked == {}, "add these commands to RUN (where they run) or NOT_RUN (why not)"
    stale = sorted((set(RUN) | set(NOT_RUN)) - set(documented))
    assert stale == [], "no file shows these commands any more: remove them from RUN or NOT_RUN"
    assert not set(RUN) & set(NOT_RUN)


def test_the_cluster_template_names_its_run_configuration_with_c():
    assert "sparkjobs run cluster train.py" not in documented_commands()  # "cluster" would be the script
    assert "aml_config/cluster.runconfig.example:2" in documented_commands()["sparkjobs run -c cluster train.py"]


# --- running them --------------------------------------------------------------------------------


@dataclass
class Session:
    name: str
    root: Path
    env: dict[str, str]
    results: dict[str, subprocess.CompletedProcess]

    def latest_run(self) -> str:
        return max(path.name for path in (Path(self.env["SPARKJOBS_HOME"]) / "runs").iterdir())

    def earlier_run(self) -> str:
        return sorted(path.name for path in (Path(self.env["SPARKJOBS_HOME"]) / "runs").iterdir())[-2]

    def run(self, command: str, check: Check) -> None:
        text = command.replace("RUN_ID", self.latest_run()) if "RUN_ID" in command else command
        text = text.replace("OTHER_ID", self.earlier_run()) if "OTHER_ID" in text else text
        # The bare spark-submit example shares /tmp/share/; here it stays inside the test's folder.
        text = text.replace("/tmp/share/", f"{self.root.parent}/share/")
        script = 'sparkjobs() { "$SPARKJOBS_TEST_PYTHON" -m sparkjobs.cli "$@"; }\n' + text
        self.results[command] = subprocess.run(
            ["bash", "-c", script], cwd=self.root / check.folder, env=self.env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
        )  # fmt: skip


def _env(base: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPARKJOBS_", "AZURE_STORAGE"))}
    env.update(
        SPARKJOBS_TEST_PYTHON=sys.executable,
        SPARKJOBS_HOME=str(base / "sparkjobs-home"),
        HOME=str(base / "home"),  # the templates' ~/.sparkjobs/share/ lands in the test's folder
        PYTHONUSERBASE=site.getuserbase(),  # packages installed with --user stay importable
        MPLCONFIGDIR=os.environ.get("MPLCONFIGDIR") or os.path.expanduser("~/.config/matplotlib"),
    )
    (base / "home").mkdir(parents=True)
    return env


def _copy_iris(dest: Path, *, with_config: bool = True) -> Path:
    ignore = shutil.ignore_patterns("outputs", "__pycache__", ".ruff_cache", *(() if with_config else ("aml_config",)))
    shutil.copytree(REPO / "examples" / "iris", dest, ignore=ignore)
    return dest


def _from_template(name: str, placeholders: dict[str, str]) -> str:
    text = (REPO / "aml_config" / name).read_text()
    for placeholder, value in placeholders.items():
        assert placeholder in text, f"aml_config/{name} no longer has {placeholder}"
        text = text.replace(placeholder, value)
    return text


def _cluster_project(root: Path, gateway: Gateway) -> None:
    write(root / "train.py", "import sys\nprint('train.py ran with', sys.argv[1:])\n")
    config = root / "aml_config"
    config.mkdir(parents=True)
    shutil.copy(REPO / "aml_config" / "spark_dependencies.yml", config / "spark_dependencies.yml")
    # The template's commented storage and verify lines, filled in and switched on.
    compute = _from_template("cluster.compute.example", {
        "https://CLUSTER.azurehdinsight.net/livy": gateway.url,
        "# storage: wasbs://CONTAINER@ACCOUNT.blob.core.windows.net/sparkjobs": f"storage: {(root.parent / 'store').as_uri()}",
        "# verify: true": f"verify: {gateway.tls.ca}",
    })  # fmt: skip
    runconfig = _from_template("cluster.runconfig.example", {})
    assert "Target: cluster\n" in runconfig
    # As the templates say: copied to cluster.compute and cluster.runconfig; the README's myhdi
    # is the same compute under another name.
    write(config / "cluster.compute", compute)
    write(config / "cluster.runconfig", runconfig)
    write(config / "myhdi.compute", compute)
    write(config / "myhdi.runconfig", runconfig.replace("Target: cluster", "Target: myhdi"))


SLEEPER = 'import time\nprint("STARTED", flush=True)\ntime.sleep(60)\n'


def _lose_a_run(session: Session) -> None:
    """Start a run and kill -9 its sparkjobs process once the job has started: the run is lost."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sparkjobs.cli", "run", "-c", "local", "sleeper.py"], cwd=session.root, env=session.env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for line in process.stdout:  # bounded: the job ends by itself after 60 s
            if "STARTED" in line:
                break
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def _run_session(session: Session, setup=None) -> Session:
    if setup is not None:
        setup(session)
    for command, check in RUN.items():
        if check.session == session.name:
            session.run(command, check)
    return session


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> dict[str, Session]:
    base = tmp_path_factory.mktemp("docs-commands")
    server = LivyTestServer(runner="python", whitelist=[base])
    # As on HDInsight: Livy behind an HTTPS gateway with the cluster login, under /livy.
    gateway = Gateway(server.url, tls=make_tls(base / "tls"), auth=(LIVY_USER, LIVY_PASSWORD))
    try:
        made = {name: Session(name, base / name / "root", _env(base / name), {}) for name in ("repo", "project", "iris", "lost", "cluster")}
        _copy_iris(made["repo"].root / "examples" / "iris")
        _copy_iris(made["project"].root, with_config=False)
        _copy_iris(made["iris"].root)
        make_project(made["lost"].root, base / "lost" / "share", framework="Python")
        write(made["lost"].root / "sleeper.py", SLEEPER)
        _cluster_project(made["cluster"].root, gateway)
        made["cluster"].env.update(SPARKJOBS_LIVY_PASSWORD=LIVY_PASSWORD, SPARKJOBS_LIVY_POLL_SECONDS="0.2")
        setups = {"lost": _lose_a_run}
        with ThreadPoolExecutor(max_workers=len(made)) as pool:
            done = list(pool.map(lambda session: _run_session(session, setups.get(session.name)), made.values()))
        yield {session.name: session for session in done}
    finally:
        gateway.stop()
        server.stop()


def _result(sessions: dict[str, Session], command: str) -> subprocess.CompletedProcess:
    return sessions[RUN[command].session].results[command]


@pytest.mark.spark
@pytest.mark.timeout(1800)  # the first test also starts every session
@pytest.mark.parametrize("command", list(RUN))
def test_documented_command_runs_as_written(sessions, command):
    result = _result(sessions, command)
    assert result.returncode == RUN[command].exit_code, f"{command}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.mark.spark
def test_the_readme_sample_prints_the_scripts_lines_and_sparkjobs_own(sessions):
    result = _result(sessions, "sparkjobs run --project examples/iris -c local train.py --alpha 0.5")
    assert [line for line in result.stdout.splitlines() if not line.startswith("[iris ")] == []
    assert [line for line in result.stderr.splitlines() if not line.startswith("sparkjobs: ")] == []
    assert re.search(r"done: accuracy \d\.\d{3}$", result.stdout.splitlines()[-1])


@pytest.mark.spark
def test_the_iris_readme_runs_count_up_in_the_shared_folder(sessions):
    assert "runs so far: 1" in _result(sessions, "sparkjobs run -c local train.py --alpha 0.5").stdout
    second = _result(sessions, "sparkjobs run -c local train.py --alpha 0.01").stdout
    assert "runs so far: 2" in second and "history: 1 earlier run(s)" in second


@pytest.mark.spark
def test_downloads_land_where_the_commands_say(sessions):
    project = sessions["project"].root
    assert list((project / "here").rglob("model.pkl"))
    assert [path for path in project.rglob("metrics.json") if "here" not in path.parts]


@pytest.mark.spark
def test_the_failing_sample_exits_3_under_bare_spark_submit(sessions):
    assert _result(sessions, "spark-submit fail.py; echo $?").stdout.splitlines()[-1] == "3"


@pytest.mark.spark
def test_the_cluster_commands_ran_the_script_on_the_test_server(sessions):
    printed = _result(sessions, "sparkjobs run -c myhdi train.py --alpha 0.5")
    assert "train.py ran with ['--alpha', '0.5']" in printed.stdout + printed.stderr
    attached = _result(sessions, "sparkjobs runs attach RUN_ID")
    assert "train.py ran with []" in attached.stdout + attached.stderr


@pytest.mark.spark
def test_the_rerun_and_restore_commands_used_the_stored_snapshot(sessions):
    assert "train.py ran with []" in _printed_by(sessions, "sparkjobs rerun RUN_ID")
    assert "train.py ran with ['--alpha', '0.1']" in _printed_by(sessions, "sparkjobs rerun RUN_ID -c myhdi -- --alpha 0.1")
    restored = sessions["cluster"].root / "old-code"
    assert (restored / "train.py").read_text() == (sessions["cluster"].root / "train.py").read_text()
    assert (restored / "aml_config" / "myhdi.compute").is_file()


def _printed_by(sessions: dict[str, Session], command: str) -> str:
    result = _result(sessions, command)
    return result.stdout + result.stderr
