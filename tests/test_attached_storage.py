"""attachStorage: more storage accounts whose keys a run gets at run time from the user's
credentials (sparkjobs/attached_storage.py). What a run sends, without running it; the real
wasb driver using an attached account on YARN executors is in tests/test_hdinsight.py."""
from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from helpers import cli, write

SECOND_KEY = base64.b64encode(secrets.token_bytes(48)).decode()  # made for this run: no key literal is committed


def _project(root: Path, attach: str) -> Path:
    write(root / "aml_config" / "hdi.compute",
          f"type: cluster\nlivy: https://127.0.0.1:9/livy\nstorage: {(root.parent / 'store').as_uri()}\nattachStorage: {attach}\n")
    write(root / "aml_config" / "hdi.runconfig", 'Target: hdi\nFramework: PySpark\nArgumentVector: ["$file"]\n')
    write(root / "job.py", "print('hi')\n")
    return root


def _env(tmp_path: Path, storage: dict) -> dict[str, str]:
    path = tmp_path / "user" / "credentials.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"storage": storage}))
    path.chmod(0o600)
    return {**os.environ, "SPARKJOBS_CREDENTIALS": str(path)}


def test_an_attached_account_gets_its_key_under_both_host_names(tmp_path):
    project = _project(tmp_path / "proj", "[seconddata]")
    env = _env(tmp_path, {"seconddata": {"key": SECOND_KEY}})
    done = cli("run", "--project", str(project), "-c", "hdi", "--dry-run", "job.py", env=env)
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    keys = {"fs.azure.account.key.seconddata.blob.core.windows.net": "***",
            "fs.azure.account.key.seconddata.dfs.core.windows.net": "***"}
    assert described["hadoop_secrets"] == keys
    assert described["submit"]["launch_spec"]["credentials_uri"].endswith("/_credentials.json")
    assert SECOND_KEY not in done.stdout + done.stderr
    assert "seconddata" not in json.dumps(described["submit"]["request"]["conf"])  # never Livy conf


def test_an_attached_account_without_a_key_is_refused_naming_it(tmp_path, isolated_home):
    project = _project(tmp_path / "proj", "[seconddata]")
    # A SAS token of the right shape, made here: no secret-looking literal is ever committed.
    env = _env(tmp_path, {"seconddata": {"sas": f"sv=2024-01-01&sig={secrets.token_hex(16)}"}})
    done = cli("run", "--project", str(project), "-c", "hdi", "job.py", env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("Error: attachStorage names storage account seconddata, for which sparkjobs found a SAS token")
    assert "context.attach_storage(spark, 'seconddata', sas=..., container=...)" in done.stderr
    assert "sig=" not in done.stderr and not (isolated_home / "work").exists()


def test_attach_storage_must_list_account_names(tmp_path):
    project = _project(tmp_path / "proj", "[Second_Data]")
    done = cli("run", "--project", str(project), "-c", "hdi", "--dry-run", "job.py", env=_env(tmp_path, {}))
    assert done.returncode == 2
    assert "attachStorage" in done.stderr and "'Second_Data' is not a storage account name" in done.stderr
