"""sparkjobs.context without Spark: path rules, fallbacks, and attach_storage's checks.

attach_storage is also exercised against a real JVM Hadoop configuration inside a Spark job in
test_bootstrap.py; here a plain dict-backed stand-in for that configuration checks the naming
and refusal rules, which are pure Python.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import sparkjobs
from sparkjobs import context

ENV_VARS = ("SPARKJOBS_RUN_ID", "SPARKJOBS_OUTPUTS", "SPARKJOBS_SHARED", "AZUREML_NATIVE_SHARE_DIRECTORY")
BLOB = "wasbs://runs@acct.blob.core.windows.net/runs/20261124T073312123Z-3f9c2a/outputs"


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch, tmp_path):
    """Outside any run: no sparkjobs variables, a throwaway home and working folder."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    project = tmp_path / "myproject"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


def test_package_init_defines_only_the_version():
    assert sparkjobs.__version__ == "0.1.0"
    assert sparkjobs.__all__ == ["__version__"]


def test_run_id_is_none_outside_a_run_and_empty_counts_as_unset(monkeypatch):
    assert context.run_id() is None
    monkeypatch.setenv("SPARKJOBS_RUN_ID", "")
    assert context.run_id() is None
    monkeypatch.setenv("SPARKJOBS_RUN_ID", "r-1")
    assert context.run_id() == "r-1"


def test_outputs_fall_back_to_an_existing_absolute_outputs_folder(bare_environment):
    folder = context.outputs_path()
    assert folder == str(bare_environment / "outputs") + os.sep
    assert Path(folder).is_dir()
    assert context.outputs_path("model.pkl") == folder + "model.pkl"


def test_local_outputs_from_the_environment_get_a_trailing_separator(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARKJOBS_OUTPUTS", str(tmp_path / "run-outputs"))
    assert context.outputs_path() == str(tmp_path / "run-outputs") + os.sep
    assert (tmp_path / "run-outputs").is_dir()
    assert context.outputs_path("plots/") == str(tmp_path / "run-outputs" / "plots") + os.sep


@pytest.mark.parametrize("base", [BLOB, BLOB + "/", "abfss://c@acct.dfs.core.windows.net/o", "file:///tmp/o/"])
def test_uri_outputs_join_without_double_slashes(monkeypatch, bare_environment, base):
    monkeypatch.setenv("SPARKJOBS_OUTPUTS", base)
    folder = context.outputs_path()
    assert folder == base.rstrip("/") + "/"
    for relative, expected in [("model.pkl", "model.pkl"), ("a//b/./c.txt", "a/b/c.txt"), ("scores/", "scores/")]:
        joined = context.outputs_path(relative)
        assert joined == folder + expected
        assert "//" not in joined.split("://", 1)[1].lstrip("/")
    assert list(bare_environment.iterdir()) == []  # nothing is created locally for a URI


@pytest.mark.parametrize("relative", ["/etc/passwd", "../elsewhere", "a/../../b"])
def test_paths_that_leave_the_folder_are_refused(relative):
    with pytest.raises(ValueError, match="relative path"):
        context.outputs_path(relative)
    with pytest.raises(ValueError, match="relative path"):
        context.shared_path(relative)


def test_shared_falls_back_to_the_default_share_of_the_current_folder(tmp_path):
    expected = tmp_path / "home" / ".sparkjobs" / "share" / "default" / "myproject"
    assert context.shared_path() == str(expected) + os.sep
    assert expected.is_dir()
    assert context.shared_path("features.parquet") == str(expected / "features.parquet")


def test_shared_prefers_sparkjobs_then_azureml_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("AZUREML_NATIVE_SHARE_DIRECTORY", str(tmp_path / "aml") + "/")
    assert context.shared_path("x") == str(tmp_path / "aml" / "x")
    monkeypatch.setenv("SPARKJOBS_SHARED", "wasbs://share@acct.blob.core.windows.net/shared/ws/proj/")
    assert context.shared_path("x") == "wasbs://share@acct.blob.core.windows.net/shared/ws/proj/x"


def test_is_cluster_means_the_outputs_are_a_uri(monkeypatch, tmp_path):
    assert context.is_cluster() is False
    monkeypatch.setenv("SPARKJOBS_OUTPUTS", str(tmp_path))
    assert context.is_cluster() is False
    monkeypatch.setenv("SPARKJOBS_OUTPUTS", BLOB)
    assert context.is_cluster() is True


# --- attach_storage ---------------------------------------------------------------------------


class HadoopConf:
    """Stands in for the JVM org.apache.hadoop.conf.Configuration: get/set of strings."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


class JavaSparkContext:
    def __init__(self, conf: HadoopConf) -> None:
        self._conf = conf

    def hadoopConfiguration(self) -> HadoopConf:
        return self._conf


class SparkContextLike:
    def __init__(self, conf: HadoopConf | None) -> None:
        self._jsc = JavaSparkContext(conf) if conf is not None else None


class SparkSessionLike:
    def __init__(self, conf: HadoopConf) -> None:
        self.sparkContext = SparkContextLike(conf)


SECRET = "not-a-real-key-but-treat-it-as-one=="


def test_account_key_goes_to_the_blob_or_dfs_setting():
    conf = HadoopConf()
    context.attach_storage(SparkSessionLike(conf), "acct", key=SECRET)
    context.attach_storage(SparkContextLike(conf), "lake", key=SECRET, dfs=True)
    assert conf.values == {
        "fs.azure.account.key.acct.blob.core.windows.net": SECRET,
        "fs.azure.account.key.lake.dfs.core.windows.net": SECRET,
    }


def test_sas_goes_to_the_container_setting_without_its_question_mark():
    conf = HadoopConf()
    context.attach_storage(SparkSessionLike(conf), "acct", sas="?sv=2022&sig=x", container="data")
    assert conf.values == {"fs.azure.sas.data.acct.blob.core.windows.net": "sv=2022&sig=x"}


def test_an_existing_value_is_kept_unless_overwrite():
    setting = "fs.azure.account.key.acct.blob.core.windows.net"
    conf = HadoopConf({setting: "cluster-value"})
    with pytest.warns(UserWarning, match="already set") as caught:
        context.attach_storage(SparkSessionLike(conf), "acct", key=SECRET)
    assert conf.values[setting] == "cluster-value"
    assert SECRET not in str(caught[0].message) and "cluster-value" not in str(caught[0].message)
    context.attach_storage(SparkSessionLike(conf), "acct", key=SECRET, overwrite=True)
    assert conf.values[setting] == SECRET


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"account": "acct"}, "exactly one"),
        ({"account": "acct", "key": SECRET, "sas": SECRET}, "exactly one"),
        ({"account": "acct", "sas": SECRET}, "container"),
        ({"account": "acct", "sas": SECRET, "container": "Bad_Name"}, "container"),
        ({"account": "acct", "sas": SECRET, "container": "data", "dfs": True}, "token provider"),
        ({"account": "acct.blob.core.windows.net", "key": SECRET}, "account name"),
        ({"account": "acct", "key": ""}, "empty"),
        ({"account": "acct", "sas": "?", "container": "data"}, "empty"),
    ],
)
def test_bad_arguments_are_refused_without_quoting_the_secret(kwargs, message):
    conf = HadoopConf()
    with pytest.raises(ValueError, match=message) as caught:
        context.attach_storage(SparkSessionLike(conf), **kwargs)
    assert SECRET not in str(caught.value)
    assert conf.values == {}


def test_a_stopped_context_is_refused():
    with pytest.raises(ValueError, match="stopped"):
        context.attach_storage(SparkContextLike(None), "acct", key=SECRET)
