"""Configuration loading: every bad input is one Error: message naming file and key, exit 2,
and nothing is written to the run store."""
from __future__ import annotations

import dataclasses

import pytest

from sparkjobs.config import Framework, TargetType, load_run_settings
from sparkjobs.errors import ConfigError

from helpers import cli, make_project, write


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "proj", tmp_path / "share")


def test_valid_configuration_loads_into_frozen_settings(project):
    settings = load_run_settings(project, "local", {})
    assert settings.compute.type is TargetType.LOCAL
    assert settings.framework is Framework.PYSPARK
    assert settings.environment["GREETING"] == "hello"
    assert settings.dependencies.configuration["spark.sql.shuffle.partitions"] == "2"
    assert settings.project.name == "demo" and settings.project.workspace == "ws"
    with pytest.raises(AttributeError):
        settings.name = "other"  # frozen


def test_unknown_key_suggests_the_close_match(project):
    write(project / "aml_config" / "local.runconfig", "Target: local\nFramwork: PySpark\n")
    with pytest.raises(ConfigError) as err:
        load_run_settings(project, "local", {})
    message = str(err.value)
    assert "local.runconfig" in message and "'Framwork'" in message and "did you mean 'Framework'" in message


def test_every_problem_is_reported_at_once(project):
    write(project / "aml_config" / "local.runconfig", "Target: local\nFramework: Scala\nArgumentVector: 3\n")
    write(project / "aml_config" / "local.compute", "type: local\nmaster: [1]\nnativeShareDirectory: /x\n")
    with pytest.raises(ConfigError) as err:
        load_run_settings(project, "local", {})
    message = str(err.value)
    assert "4 problems" in message
    assert "'Framework' must be one of PySpark, Python" in message
    assert "'ArgumentVector' must be a list of strings" in message
    assert "local.compute" in message and "'master' must be a non-empty string" in message
    assert "did you mean 'nativeSharedDirectory'" in message


@pytest.mark.parametrize(
    "filename, text, expected",
    [
        ("local.runconfig", "Target: [local\n", "is not valid YAML at line"),
        ("local.runconfig", "- just\n- a list\n", "must be a YAML mapping"),
        ("local.runconfig", "Framework: PySpark\n", "key 'Target' is required"),
        ("local.runconfig", "Target: nowhere\n", "nowhere.compute: file not found"),
        ("local.compute", "master: local[2]\n", "key 'type' is required"),
        ("local.compute", "type: yarn\n", "key 'type' must be one of local, spark, cluster"),
        ("spark_dependencies.yml", "packages: [not-a-coordinate]\n", "is not a Maven coordinate"),
        ("spark_dependencies.yml", "configuration: [1, 2]\n", "'configuration' must be a mapping"),
        ("project.yml", "snapshotCapMB: -1\n", "'snapshotCapMB' must be a positive whole number"),
    ],
)
def test_bad_yaml_of_each_kind(project, filename, text, expected):
    write(project / "aml_config" / filename, text)
    with pytest.raises(ConfigError) as err:
        load_run_settings(project, "local", {})
    assert expected in str(err.value)
    assert filename in str(err.value)


def test_missing_runconfig_lists_the_available_ones(project):
    with pytest.raises(ConfigError, match="No run configuration 'gpu'.*Available: local"):
        load_run_settings(project, "gpu", {})


def test_missing_dependencies_file_is_named(project):
    (project / "aml_config" / "spark_dependencies.yml").unlink()
    with pytest.raises(ConfigError, match="spark_dependencies.yml: file not found"):
        load_run_settings(project, "local", {})


def test_cluster_compute_requires_livy_but_not_storage(project):
    write(project / "aml_config" / "hdi.compute", "type: cluster\nlivy: ftp://x\n")
    write(project / "aml_config" / "hdi.runconfig", "Target: hdi\n")
    with pytest.raises(ConfigError) as err:
        load_run_settings(project, "hdi", {})
    assert "'storage'" not in str(err.value) and "'livy' must be an http(s) URL" in str(err.value)
    write(project / "aml_config" / "hdi.compute", "type: cluster\n")
    with pytest.raises(ConfigError, match="'livy' is required"):
        load_run_settings(project, "hdi", {})
    write(project / "aml_config" / "hdi.compute", "type: cluster\nlivy: https://c.azurehdinsight.net/livy\n")
    assert load_run_settings(project, "hdi", {}).compute.storage is None  # the cluster's own, asked of Ambari


def test_history_env_overrides_project_file(project):
    write(project / "aml_config" / "project.yml", "name: demo\nhistory: /tmp/somewhere\n")
    assert load_run_settings(project, "local", {}).project.history == "/tmp/somewhere"
    assert load_run_settings(project, "local", {"SPARKJOBS_HISTORY": "/x"}).project.history == "/x"


def test_cli_bad_config_exits_2_with_one_error_and_writes_nothing(project, isolated_home):
    write(project / "aml_config" / "local.runconfig", "Target: local\nFramwork: PySpark\n")
    write(project / "train.py", "print('never runs')\n")
    done = cli("run", "-c", "local", "--project", str(project), "train.py")
    assert done.returncode == 2
    assert done.stderr.startswith("Error: ") and "Traceback" not in done.stderr
    assert done.stderr.count("Error:") == 1
    assert not (isolated_home / "runs").exists()


def test_cli_secret_in_spark_conf_is_refused(project, isolated_home):
    write(project / "aml_config" / "local.compute", "type: local\nconf:\n  spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net: abc\n")
    write(project / "train.py", "print('never runs')\n")
    done = cli("run", "-c", "local", "--project", str(project), "train.py")
    assert done.returncode == 2 and "may not carry secrets" in done.stderr
    assert "abc" not in done.stderr


def test_cli_usage_error_exits_2(project):
    done = cli("run", "--project", str(project), "train.py")
    assert done.returncode == 2 and "Error:" in done.stderr


def test_script_outside_project_or_missing_is_refused(project, isolated_home):
    done = cli("run", "-c", "local", "--project", str(project), "../outside.py")
    assert done.returncode == 2 and "outside the project" in done.stderr
    done = cli("run", "-c", "local", "--project", str(project), "nope.py")
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert not (isolated_home / "runs").exists()


def test_merge_keys_may_override_merged_values(project):
    write(project / "aml_config" / "local.runconfig", "Target: local\nEnvironmentVariables:\n  <<: {A: one, B: two}\n  B: three\n")
    assert dict(load_run_settings(project, "local", {}).environment) == {"A": "one", "B": "three"}


def test_an_alias_inside_its_own_anchor_is_refused(project):
    write(project / "aml_config" / "local.runconfig", "Target: local\nEnvironmentVariables: &env\n  A: *env\n")
    with pytest.raises(ConfigError, match="local.runconfig: the alias at line 3 refers to a value that contains it"):
        load_run_settings(project, "local", {})


def test_values_in_messages_are_cut_short(project):
    write(project / "aml_config" / "local.compute", "type: local\nmaster: [" + ", ".join(["x" * 500] * 100) + "]\n")
    with pytest.raises(ConfigError) as err:
        load_run_settings(project, "local", {})
    assert "'master' must be a non-empty string" in str(err.value) and len(str(err.value)) < 500


@pytest.mark.parametrize("name", ["../local", "/etc/passwd", ""])
def test_runconfig_and_target_names_are_plain_names(project, name):
    with pytest.raises(ConfigError, match="must be a plain name"):
        load_run_settings(project, name, {})
    write(project / "aml_config" / "local.runconfig", "Target: ../../outside\n")
    with pytest.raises(ConfigError, match="'Target' must be a single folder name"):
        load_run_settings(project, "local", {})


def test_settings_name_the_config_files_they_were_loaded_from(project):
    settings = load_run_settings(project, "local", {})
    assert settings.config_files == (
        "aml_config/local.compute",
        "aml_config/local.runconfig",
        "aml_config/project.yml",
        "aml_config/spark_dependencies.yml",
    )


def test_argument_vector_without_file_is_the_command_line(project):
    from sparkjobs.run_flow import resolve_argv

    settings = dataclasses.replace(load_run_settings(project, "local", {}), argument_vector=("main.py", "1"))
    assert resolve_argv(settings, None, ()) == ("main.py", ("1",))
    assert resolve_argv(settings, "main.py", ("2",)) == ("main.py", ("1", "2"))
    with pytest.raises(ConfigError, match=r"has no \$file"):
        resolve_argv(settings, "other.py", ())
