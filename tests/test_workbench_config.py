"""Azure ML Workbench projects load unchanged (issue 11): every key Workbench's configuration
reference defines is honoured, mapped or ignored with a notice, never refused as unknown.

The projects under tests/workbench_projects/ are written from that reference, as Workbench wrote
them (CRLF line endings, quoted values, nulls). They are copied into tmp_path and used unedited;
a test that needs a variant edits its copy and says why. None of these tests starts Spark:
Framework Python runs and --dry-run are enough (tests/test_workbench_runs.py runs Spark).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from helpers import cli, cli_json, write
from sparkjobs.config import Disposition, load_run_settings
from sparkjobs.errors import ConfigError
from sparkjobs.scala_check import spark_scala_version
from sparkjobs.spark_env import find_spark_home
from sparkjobs.workbench_keys import livy_from_address

FIXTURES = Path(__file__).resolve().parent / "workbench_projects"
IGNORED_LOCAL = ("UseSampling", "DataSourceSettings", "DataSourceSubstitutions", "CondaDependenciesFile")


def workbench_env(home: Path) -> dict[str, str]:
    """The user's environment, with HOME in tmp (Workbench's share folder is ~/.azureml/share/)
    and this Python's folder first on PATH, so Workbench's pythonLocation "python" and
    sparkSubmitLocation "spark-submit" find this installation's programs."""
    home.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, HOME=str(home), PATH=path)


@pytest.fixture
def iris(tmp_path) -> Path:
    root = tmp_path / "iris"
    shutil.copytree(FIXTURES / "iris", root)
    return root


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return workbench_env(tmp_path / "home")


def nothing_written(home: Path) -> bool:
    return not (home / "runs").exists() and not (home / "work").exists()


# ---- the defect that started it: a real Workbench key "corrected" into another -------------

def test_conda_dependencies_file_is_accepted_not_suggested_as_spark_dependencies_file(tmp_path):
    # Failed before: "unknown key 'CondaDependenciesFile'; did you mean 'SparkDependenciesFile'?"
    write(tmp_path / "aml_config" / "local.compute", "type: local\n")
    write(tmp_path / "aml_config" / "conda_dependencies.yml", "name: env\ndependencies: [python=3.5.2]\n")
    write(tmp_path / "aml_config" / "local.runconfig",
          "Target: local\nCondaDependenciesFile: aml_config/conda_dependencies.yml\n")
    settings = load_run_settings(tmp_path, "local", {})
    assert settings.conda_dependencies_file == "aml_config/conda_dependencies.yml"
    notice = next(n for n in settings.notices if n.key == "CondaDependenciesFile")
    assert notice.disposition is Disposition.MAPPED and "installed from PyPI" in notice.reason


def test_a_workbench_key_in_the_wrong_file_is_named_as_such_never_corrected_into_another(tmp_path):
    write(tmp_path / "aml_config" / "local.compute", "type: local\nCondaDependenciesFile: x.yml\nnativeShareDirectory: /x\n")
    write(tmp_path / "aml_config" / "local.runconfig", "Target: local\npythonLocation: python\n")
    with pytest.raises(ConfigError) as caught:
        load_run_settings(tmp_path, "local", {})
    message = str(caught.value)
    assert "unknown key 'CondaDependenciesFile'; 'CondaDependenciesFile' is a Workbench key for a .runconfig file" in message
    assert "unknown key 'pythonLocation'; 'pythonLocation' is a Workbench key for a .compute file" in message
    assert "SparkDependenciesFile" not in message
    # A key nobody defines keeps today's error, with its typo suggestion.
    assert "unknown key 'nativeShareDirectory'; did you mean 'nativeSharedDirectory'?" in message


# ---- every key of every file resolves, and config check shows it ---------------------------

def _keys_in(root: Path, files: list[str]) -> set[tuple[str, str]]:
    keys = set()
    for file in files:
        if file.endswith(("project.yml", "conda_dependencies.yml")):
            continue  # not Workbench's run settings; conda's file is only named (issue 12 builds it)
        keys |= {(file, key) for key in yaml.safe_load((root / file).read_text()) or {}}
    return keys


@pytest.mark.parametrize("name", ["local", "python", "myhdi"])
def test_config_check_lists_every_key_of_every_file_once_with_what_sparkjobs_does(iris, env, name):
    done, report = cli_json("config", "check", "-c", name, "--json", cwd=iris, env=env)
    assert done.returncode == 0, done.stderr
    listed = [(k["file"], k["key"]) for k in report["keys"]]
    assert len(listed) == len(set(listed))
    assert set(listed) == _keys_in(iris, report["files"])
    assert {k["disposition"] for k in report["keys"]} <= {"honoured", "mapped", "ignored"}
    assert all(k["reason"] for k in report["keys"])


def test_config_check_prints_each_key_by_file(iris, env):
    done = cli("config", "check", "-c", "local", cwd=iris, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Run configuration 'local': target 'local' (local), framework PySpark.\n")
    assert "\naml_config/local.compute:\n" in done.stdout
    assert "  UseSampling              ignored   it chose Workbench Data Prep samples" in done.stdout
    assert "  userManagedEnvironment  mapped    the job's Python environment is yours" in done.stdout


def test_the_fixture_files_are_as_workbench_wrote_them_on_windows():
    for path in (FIXTURES / "iris" / "aml_config").iterdir():
        data = path.read_bytes()
        assert b"\r\n" in data and data.count(b"\n") == data.count(b"\r\n"), path


def test_local_workbench_compute_is_honoured(iris, env):
    settings = load_run_settings(iris, "local", env)
    bindir = Path(sys.executable).parent
    assert settings.compute.python_location == str(bindir / "python")
    assert settings.compute.spark_submit_location == str(bindir / "spark-submit")
    assert settings.compute.native_shared_directory == "~/.azureml/share/"
    assert settings.compute.user_managed_environment and not settings.builds_environment
    assert dict(settings.environment) == {"EXAMPLE_ENV_VAR": "Example Value"}
    assert settings.dependencies.repositories == ("https://mmlspark.azureedge.net/maven", "https://repo1.maven.org/maven2")
    assert settings.dependencies.configuration["spark.sparkjobs.fixture"] == "42"
    assert {n.key for n in settings.ignored} == set(IGNORED_LOCAL)


def test_workbench_default_names_not_on_path_map_to_sparkjobs_own(iris):
    settings = load_run_settings(iris, "local", {"PATH": ""})
    assert settings.compute.python_location is None and settings.compute.spark_submit_location is None
    mapped = {n.key: n for n in settings.notices if n.disposition is Disposition.MAPPED}
    assert "'python' is not on PATH, so sparkjobs uses the one it runs with" == mapped["pythonLocation"].reason


def test_a_named_program_that_does_not_exist_is_refused(iris, env):
    compute = iris / "aml_config" / "local.compute"  # edited copy: a path that is not there
    compute.write_text("type: local\r\npythonLocation: /no/such/python3\r\n")
    with pytest.raises(ConfigError, match="key 'pythonLocation' names '/no/such/python3', which is not an executable"):
        load_run_settings(iris, "local", env)


def test_quoted_numbers_nulls_and_quoted_booleans(tmp_path):
    write(tmp_path / "aml_config" / "c.compute", 'type: "cluster"\r\nlivy: "https://h/livy"\r\nnumExecutors: "4"\r\n'
          'startTimeoutMinutes: "30"\r\nqueue: null\r\nuserManagedEnvironment: "false"\r\n')
    write(tmp_path / "aml_config" / "c.runconfig", 'Target: "c"\r\nEnvironmentVariables: null\r\nArgumentVector: null\r\n'
          'TrackedRun: "true"\r\nPrepareEnvironment: "true"\r\nUseSampling: null\r\nCondaDependenciesFile: null\r\n')
    settings = load_run_settings(tmp_path, "c", {})
    assert settings.compute.num_executors == 4 and settings.compute.start_timeout_minutes == 30.0
    assert settings.compute.queue is None and dict(settings.environment) == {}
    assert settings.argument_vector == ("$file",) and settings.prepare_environment
    assert settings.conda_dependencies_file is None  # null, and no aml_config/conda_dependencies.yml
    listed = {n.key for n in settings.notices}
    assert {"EnvironmentVariables", "ArgumentVector", "UseSampling", "CondaDependenciesFile", "queue"} <= listed


def test_a_null_type_or_target_is_one_clear_error(tmp_path):
    write(tmp_path / "aml_config" / "c.compute", "type: null\n")
    write(tmp_path / "aml_config" / "c.runconfig", "Target: c\n")
    with pytest.raises(ConfigError, match="key 'type' is required"):
        load_run_settings(tmp_path, "c", {})
    write(tmp_path / "aml_config" / "c.runconfig", "Target: null\n")
    with pytest.raises(ConfigError, match="key 'Target' is required"):
        load_run_settings(tmp_path, "c", {})


# ---- HDInsight: address, username, password, yarnDeployMode --------------------------------

@pytest.mark.parametrize("address", ["myhdi-ssh.azurehdinsight.net", "myhdi.azurehdinsight.net",
                                     "https://myhdi.azurehdinsight.net", "https://myhdi.azurehdinsight.net/",
                                     "MyHDI-ssh.azurehdinsight.net:22"])
def test_an_hdinsight_address_gives_its_livy_url(address):
    assert livy_from_address(address) == "https://myhdi.azurehdinsight.net/livy"


@pytest.mark.parametrize("address", ["10.0.0.4", "myvm.westus.cloudapp.azure.com", "", "a.b.azurehdinsight.net"])
def test_an_address_that_is_not_hdinsight_gives_none(address):
    assert livy_from_address(address) is None


def test_the_workbench_hdinsight_target_resolves_without_contacting_it(iris, env):
    settings = load_run_settings(iris, "myhdi", env)
    compute = settings.compute
    assert compute.livy == "https://myhdi.azurehdinsight.net/livy" and compute.username == "sshuser"
    assert compute.python_location == "/usr/bin/anaconda/envs/py35/bin/python3" and compute.spark_submit_location is None
    by_key = {n.key: n.disposition for n in settings.notices if n.file == "aml_config/myhdi.compute"}
    assert by_key == {"type": Disposition.HONOURED, "username": Disposition.HONOURED,
                      "nativeSharedDirectory": Disposition.HONOURED, "password": Disposition.IGNORED,
                      "address": Disposition.MAPPED, "pythonLocation": Disposition.MAPPED,
                      "sparkSubmitLocation": Disposition.IGNORED, "yarnDeployMode": Disposition.HONOURED}


def test_a_password_in_the_project_is_refused_and_never_printed(iris, env, isolated_home):
    compute = iris / "aml_config" / "myhdi.compute"  # edited copy: Workbench's encrypted password kept
    compute.write_bytes(compute.read_bytes().replace(b'password: ""', b'password: "Xq7-encrypted-pw"'))
    write(iris / "train.py", "print('never runs')\n")
    done = cli("run", "-c", "myhdi", "train.py", cwd=iris, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("Error: Invalid configuration: ") and done.stderr.count("\n") == 1
    for words in ("key 'password' holds a password, which would be copied into every snapshot",
                  "set SPARKJOBS_LIVY_PASSWORD", "the credentials file outside the project",
                  "as 'livy: {https://myhdi.azurehdinsight.net/livy: {password: ...}}'"):
        assert words in done.stderr
    assert "Xq7-encrypted-pw" not in done.stderr
    assert nothing_written(isolated_home)


def test_yarn_deploy_mode_maps_to_a_spark_targets_deploy_mode(tmp_path):
    write(tmp_path / "aml_config" / "s.compute", "type: spark\nmaster: spark://h:7077\nyarnDeployMode: client\n")
    write(tmp_path / "aml_config" / "s.runconfig", "Target: s\n")
    settings = load_run_settings(tmp_path, "s", {})
    assert settings.compute.deploy_mode == "client"
    assert [n.disposition for n in settings.notices if n.key == "yarnDeployMode"] == [Disposition.MAPPED]


# ---- Docker: one clear refusal, and init --from-docker writes what runs instead ------------

def test_a_docker_target_is_refused_with_the_compute_to_use_and_the_command_that_writes_it(iris, env, isolated_home):
    done = cli("run", "-c", "docker", "iris_sklearn.py", cwd=iris, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert "type 'localdocker' is a Workbench Docker target, which sparkjobs does not run" in done.stderr
    assert "\n    type: local\n    master: local[*]\n    nativeSharedDirectory: \"~/.azureml/share/\"\n" in done.stderr
    assert done.stderr.endswith("Run 'sparkjobs init --from-docker docker' to write it.\n")
    assert nothing_written(isolated_home)

    written = cli("init", "--from-docker", "docker", cwd=iris, env=env)
    assert written.returncode == 0 and written.stdout == f"wrote {iris / 'aml_config' / 'docker.compute'}\n"
    text = (iris / "aml_config" / "docker.compute").read_text()
    assert "type: local\nmaster: local[*]\nnativeSharedDirectory: \"~/.azureml/share/\"\n" in text
    assert "microsoft/mmlspark:plus-0.7.91" in text  # the comment says what it replaced
    done, plan = cli_json("run", "-c", "docker", "--dry-run", "iris_sklearn.py", cwd=iris, env=env)
    assert done.returncode == 0, done.stderr
    assert plan["target"] == {"name": "docker", "type": "local"}
    assert {n["key"] for n in plan["notices"]} == {"UseSampling"}  # the conda file is built, PrepareEnvironment honoured
    again = cli("init", "--from-docker", "docker", cwd=iris, env=env)
    assert again.returncode == 2 and "is not a Workbench Docker target (its type is 'local')" in again.stderr


def test_a_remote_vm_target_is_refused_naming_what_to_use(tmp_path):
    write(tmp_path / "aml_config" / "vm.compute", 'type: "remote"\r\naddress: "10.0.0.4"\r\nusername: "me"\r\n')
    write(tmp_path / "aml_config" / "vm.runconfig", "Target: vm\n")
    with pytest.raises(ConfigError, match="type 'remote' is a Workbench remote-VM target, which sparkjobs does not run") as caught:
        load_run_settings(tmp_path, "vm", {})
    assert 'master: "spark://10.0.0.4:7077"' in str(caught.value)


def test_a_remote_docker_target_becomes_a_spark_target_on_that_machine(tmp_path):
    write(tmp_path / "aml_config" / "vm.compute", 'type: "remotedocker"\r\naddress: "myvm.westus.cloudapp.azure.com"\r\n'
          'username: "me"\r\npassword: "Zk9-enc-pw"\r\nbaseDockerImage: "microsoft/mmlspark:plus-0.7.91"\r\n')
    write(tmp_path / "aml_config" / "vm.runconfig", "Target: vm\n")
    with pytest.raises(ConfigError) as caught:
        load_run_settings(tmp_path, "vm", {})
    assert "type 'remotedocker' is a Workbench Docker target" in str(caught.value)
    assert 'master: "spark://myvm.westus.cloudapp.azure.com:7077"' in str(caught.value)
    assert "Zk9-enc-pw" not in str(caught.value)
    done = cli("init", "--from-docker", "vm", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Zk9-enc-pw" not in (tmp_path / "aml_config" / "vm.compute").read_text()
    settings = load_run_settings(tmp_path, "vm", {})
    assert settings.compute.type.value == "spark" and settings.compute.master == "spark://myvm.westus.cloudapp.azure.com:7077"


# ---- notices: once per run, silent with --quiet; Framework Python's Spark settings ---------

def test_each_ignored_key_is_said_once_per_run_and_quiet_silences_them(iris, env, isolated_home):
    write(iris / "hello.py", "print('hello')\n")  # Framework Python: no Spark starts
    done = cli("run", "-c", "python", "hello.py", cwd=iris, env=env)
    assert done.returncode == 0, done.stderr
    notices = [line for line in done.stderr.splitlines() if " is ignored: " in line]
    assert notices == [  # in the file's order, each reason named where it is written
        "sparkjobs: aml_config/python.runconfig: key 'CondaDependenciesFile' is ignored: no environment is prepared "
        "for this run (PrepareEnvironment is false in aml_config/python.runconfig and userManagedEnvironment is true "
        "in aml_config/local.compute): the job uses the packages the target's Python has",
        "sparkjobs: aml_config/python.runconfig: key 'UseSampling' is ignored: it chose Workbench Data Prep samples and "
        "data sources, which sparkjobs does not have; scripts read their data as written",
    ]
    assert "not built" not in done.stderr  # the notice says it: not a second line for the same fact
    quiet = cli("run", "-c", "python", "--quiet", "hello.py", cwd=iris, env=env)
    assert quiet.returncode == 0 and " is ignored: " not in quiet.stderr and "hello" in quiet.stdout
    assert "not built" not in quiet.stderr


def test_user_managed_environment_alone_is_named_as_the_reason_nothing_is_built(iris, env):
    runconfig = iris / "aml_config" / "python.runconfig"
    runconfig.write_bytes(runconfig.read_bytes().replace(b'PrepareEnvironment: "false"', b'PrepareEnvironment: "true"'))
    settings = load_run_settings(iris, "python", env)
    assert settings.prepare_environment and not settings.builds_environment
    (notice,) = [n for n in settings.notices if n.key == "CondaDependenciesFile"]
    assert notice.reason.startswith("no environment is prepared for this run (userManagedEnvironment is true in "
                                    "aml_config/local.compute)")
    refused = cli("env", "build", "-c", "python", cwd=iris, env=env)
    assert refused.returncode == 2 and refused.stderr.startswith("Error: ")
    assert "userManagedEnvironment is true in aml_config/local.compute" in refused.stderr, refused.stderr
    assert "PrepareEnvironment is false" not in refused.stderr


def test_framework_python_shows_and_passes_the_spark_settings_a_session_would_use(iris, env):
    done, plan = cli_json("run", "-c", "python", "--dry-run", "iris_sklearn.py", cwd=iris, env=env)
    assert done.returncode == 0, done.stderr
    assert plan["spark_conf"]["spark.app.name"] == "ClassifyingIris"
    submit_args = plan["submit"]["env"]["PYSPARK_SUBMIT_ARGS"]
    assert "--conf spark.app.name=ClassifyingIris" in submit_args and "--conf spark.sql.shuffle.partitions=3" in submit_args
    assert "--repositories https://mmlspark.azureedge.net/maven,https://repo1.maven.org/maven2" in submit_args
    assert submit_args.endswith(" pyspark-shell")
    assert plan["submit"]["argv"][0] == str(Path(sys.executable).parent / "python")


def test_python_and_spark_submit_locations_are_the_programs_that_run_the_job(iris, env, tmp_path):
    wrapper = tmp_path / "bin" / "my-python"
    write(wrapper, f"#!/bin/sh\nexport WRAPPED_BY=my-python\nexec {sys.executable} \"$@\"\n").chmod(0o755)
    submit = tmp_path / "bin" / "my-spark-submit"
    write(submit, "#!/bin/sh\nexit 9\n").chmod(0o755)
    compute = iris / "aml_config" / "local.compute"  # edited copy: the user's own programs
    compute.write_text(f"type: local\r\npythonLocation: {wrapper}\r\nsparkSubmitLocation: {submit}\r\n")
    done, plan = cli_json("run", "-c", "local", "--dry-run", "iris_sklearn.py", cwd=iris, env=env)
    assert done.returncode == 0, done.stderr
    assert plan["submit"]["argv"][0] == str(submit) and plan["spark_conf"]["spark.pyspark.python"] == str(wrapper)
    write(iris / "who.py", "import os\nprint('python:', os.environ.get('WRAPPED_BY'))\n")
    ran = cli("run", "-c", "python", "who.py", cwd=iris, env=env)  # Framework Python: the wrapper runs it
    assert ran.returncode == 0 and "python: my-python" in ran.stdout, ran.stderr


# ---- item 3: a package built for another Scala than this Spark's ----------------------------

def test_a_package_for_another_scala_is_warned_of_before_the_run_starts(iris, env):
    scala = spark_scala_version(find_spark_home(env))
    assert scala is not None
    other = "2.11" if scala != "2.11" else "2.12"
    deps = iris / "aml_config" / "spark_dependencies.yml"  # edited copy: both package shapes, one mismatched
    deps.write_text(f'packages:\r\n  - group: "com.microsoft.ml.spark"\r\n    artifact: "mmlspark_{other}"\r\n'
                    f'    version: "0.5"\r\n  - "org.jsoup:jsoup:1.17.2"\r\n  - "a.b:c_{scala}:1.0"\r\n')
    write(iris / "hello.py", "print('hello')\n")  # Framework Python without Spark: nothing is resolved
    done = cli("run", "-c", "python", "--quiet", "hello.py", cwd=iris, env=env)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "Warning:" in line]
    assert warnings == [
        f"sparkjobs: Warning: package com.microsoft.ml.spark:mmlspark_{other}:0.5 in aml_config/spark_dependencies.yml "
        f"is built for Scala {other}, but this Spark uses Scala {scala}, so it will fail to load; use a version of "
        f"mmlspark_{scala} instead."
    ]
    assert done.stderr.index("Warning:") < done.stderr.index("Run ")


def test_the_hdinsight_target_without_a_password_is_one_error_naming_where_to_put_it(iris, env, isolated_home):
    done = cli("run", "-c", "myhdi", "iris_sklearn.py", cwd=iris, env=env)  # stops before contacting the cluster
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "Error: No Livy password for sshuser at https://myhdi.azurehdinsight.net/livy: set SPARKJOBS_LIVY_PASSWORD, "
        "or add 'livy: {https://myhdi.azurehdinsight.net/livy: {password: ...}}' to the credentials file "
        f"{isolated_home / 'credentials.yaml'} (mode 0600, never in the project).\n")
    assert nothing_written(isolated_home)


def test_a_conda_dependencies_file_that_is_not_a_path_is_refused(tmp_path):
    write(tmp_path / "aml_config" / "c.compute", "type: local\n")
    write(tmp_path / "aml_config" / "c.runconfig", "Target: c\nCondaDependenciesFile: [a, b]\n")
    with pytest.raises(ConfigError, match="key 'CondaDependenciesFile' must be a non-empty string"):
        load_run_settings(tmp_path, "c", {})


def test_the_hdinsight_python_location_reaches_the_clusters_spark_conf(iris, env):
    from sparkjobs.run_flow import merged_spark_conf

    conf = merged_spark_conf(load_run_settings(iris, "myhdi", env))
    assert conf["spark.pyspark.python"] == "/usr/bin/anaconda/envs/py35/bin/python3"
    assert conf["spark.app.name"] == "ClassifyingIris" and conf["spark.sparkjobs.fixture"] == "42"
