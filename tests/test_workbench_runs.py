"""A Workbench project runs on real local Spark without an edit (issue 11, items 1 and 6): the
Workbench logger's calls become the run's metrics, the shared folder is used the Workbench way,
and Framework Python running a PySpark script gets the same Spark settings as PySpark does.
Two Spark runs in all; tests/test_workbench_config.py covers the rest without Spark."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import cli, cli_json
from test_workbench_config import FIXTURES, workbench_env


@pytest.fixture
def iris(tmp_path) -> Path:
    root = tmp_path / "iris"
    shutil.copytree(FIXTURES / "iris", root)
    return root


@pytest.mark.parametrize("config", ["local", "python"])
def test_the_workbench_sample_runs_unedited_with_its_logger_and_shared_folder(iris, tmp_path, config):
    home = tmp_path / "home"
    env = workbench_env(home)
    done, record = cli_json("run", "-c", config, "--json", "iris_sklearn.py", cwd=iris, env=env)
    assert done.returncode == 0, done.stderr
    assert record["status"] == "completed"
    # The Workbench logger's calls are the run's metrics.
    shown, data = cli_json("runs", "show", record["id"], "--json", cwd=iris, env=env)
    assert shown.returncode == 0, shown.stderr
    assert data["metrics"]["Row Count"] == 3 and data["metrics"]["Accuracy"] == 0.75
    assert [p["value"] for p in data["metric_series"]["Regularization Rate"]] == [10.0, 1.0, 0.1]
    # The dependencies file's Spark settings applied, under PySpark and plain Python alike.
    assert data["metrics"]["Shuffle Partitions"] == "3"
    settings = cli("artifacts", "download", record["id"], "outputs/settings.txt", "-o", str(tmp_path / "got"),
                   cwd=iris, env=env)
    assert settings.returncode == 0, settings.stderr
    assert (tmp_path / "got" / "settings.txt").read_text() == (
        "ClassifyingIris\nExample Value\n" if config == "local" else "ClassifyingIris\n\n")
    # AZUREML_NATIVE_SHARE_DIRECTORY + 'file': Workbench's ~/.azureml/share/, per workspace and project.
    assert (home / ".azureml" / "share" / "default" / "iris" / "iris_count.txt").read_text() == "3"
