"""The sample project runs end to end exactly as the README's first command runs it."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from helpers import REPO, cli_json

pytestmark = pytest.mark.spark


def test_iris_example_end_to_end(tmp_path):
    project = tmp_path / "iris"
    shutil.copytree(REPO / "examples" / "iris", project, ignore=shutil.ignore_patterns("outputs", ".ruff_cache"))
    compute = project / "aml_config" / "local.compute"
    # keep the shared folder inside the test's tmp folder instead of the user's home
    compute.write_text(compute.read_text().replace("~/.sparkjobs/share/", f"{tmp_path}/share/"))
    env = dict(os.environ, SPARKJOBS_HOME=str(tmp_path / "home"))
    done, record = cli_json("run", "--project", str(project), "-c", "local", "--json", "train.py", "--alpha", "0.5", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    paths = {a["path"] for a in record["artifacts"]}
    assert {"outputs/model.pkl", "outputs/metrics.json", "outputs/confusion.png"} <= paths
    assert any(p.startswith("outputs/model/") for p in paths)
    metrics = json.loads((tmp_path / "home" / "runs" / record["id"] / "outputs" / "metrics.json").read_text())
    assert metrics["alpha"] == 0.5 and 0.5 < metrics["accuracy"] <= 1.0
    png = (tmp_path / "home" / "runs" / record["id"] / "outputs" / "confusion.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert "runs so far: 1" in done.stderr
    assert (tmp_path / "share" / "default" / "iris" / "run_count.txt").read_text().strip() == "1"
