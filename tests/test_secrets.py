"""Secrets never reach a job's environment, its output or the run history (issue 7, section 3).

The common set-up: ``AZURE_STORAGE_CONNECTION_STRING`` and ``SPARKJOBS_LIVY_PASSWORD`` exported,
plus a credentials file, and the team's run history in Azure (Azurite here). The job prints its
whole environment, and also prints the secrets itself, raw, base64 (at every byte alignment) and
URL-encoded, from copies kept under variable names sparkjobs does not know. No form of any secret
may reach the terminal, a driver log, or anything stored: Azurite's blobs and every local file.

Only Azurite's published dev key is a real key here; the Livy passwords and the file's key are
made up in this module.
"""
from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from helpers import cli, cli_json, make_project, write

from sparkjobs.credentials import CREDENTIAL_VARIABLES

# Made up for these tests: characters that URL-encoding changes, and long enough to be masked.
LIVY_PASSWORD = "Livy+pass/word=&made up 42"
FILE_KEY = base64.b64encode(b"made-up key of otheracct, 32 by!").decode()
FILE_LIVY_PASSWORD = "file-livy-password-7Qx"
# Names sparkjobs does not know, holding copies: the job can always find a secret some other way.
COPIES = {"COPY_OF_KEY", "COPY_OF_CONNECTION", "COPY_OF_LIVY", "COPY_OF_FILE_KEY", "COPY_OF_FILE_LIVY"}

JOB = r'''
import base64, os, re, sys
from urllib.parse import quote, quote_plus

print("NAMES", " ".join(sorted(os.environ)))
print("ENVIRON", dict(os.environ))
for name in sorted(n for n in os.environ if n.startswith("COPY_OF_")):
    value = os.environ[name]
    raw = value.encode()
    lower_hex = re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe=""))
    forms = [value, quote(value), quote(value, safe=""), quote_plus(value), lower_hex,
             base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
             base64.b64encode(b"x" + raw).decode(), base64.b64encode(b"xy" + raw + b"z").decode(),
             base64.b64encode(("key=" + value).encode()).decode(), raw.hex()]
    for form in forms:
        print(name, form)
        print(name, form, file=sys.stderr)
os.makedirs("outputs", exist_ok=True)
open("outputs/done.txt", "w").write("done")
'''


def _windows(text: str, width: int = 16) -> set[str]:
    return {text[i : i + width] for i in range(len(text) - width + 1)} or {text}


def _forbidden(secrets: dict[str, str]) -> dict[str, set[str]]:
    """For each secret: every 16-character window of every form the job printed, skipping the
    few characters at the edges of a base64 form that also encode the bytes around the secret."""
    found: dict[str, set[str]] = {}
    for name, value in secrets.items():
        raw = value.encode()
        lower_hex = re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe=""))
        pieces = {value, quote(value), quote(value, safe=""), quote_plus(value), lower_hex, raw.hex()}
        for prefix in (b"", b"x", b"xy", b"key="):
            encoded = base64.b64encode(prefix + raw)
            pieces.add(encoded.decode()[4:-4])
            pieces.add(base64.urlsafe_b64encode(prefix + raw).decode()[4:-4])
        found[name] = set().union(*(_windows(p) for p in pieces if p))
    return found


def _leaks(text: str | bytes, forbidden: dict[str, set[str]]) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return sorted(name for name, windows in forbidden.items() if any(w in text for w in windows))


@pytest.fixture
def setup(tmp_path, azurite, azurite_container):
    credentials = write(
        tmp_path / "private" / "credentials.yaml",
        f"storage:\n  otheracct: {{key: '{FILE_KEY}'}}\nlivy:\n  somecluster: {{password: '{FILE_LIVY_PASSWORD}'}}\n",
    )
    credentials.chmod(0o600)
    project = make_project(tmp_path / "proj", tmp_path / "share", framework="Python")
    write(project / "job.py", JOB)
    env = dict(os.environ)
    env.update(
        SPARKJOBS_HOME=str(tmp_path / "home"),
        AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string,
        SPARKJOBS_LIVY_PASSWORD=LIVY_PASSWORD,
        SPARKJOBS_CREDENTIALS=str(credentials),
        COPY_OF_KEY=azurite.key,
        COPY_OF_CONNECTION=azurite.connection_string,
        COPY_OF_LIVY=LIVY_PASSWORD,
        COPY_OF_FILE_KEY=FILE_KEY,
        COPY_OF_FILE_LIVY=FILE_LIVY_PASSWORD,
    )
    env.pop("SPARKJOBS_HISTORY", None)
    secrets = {
        "storage key": azurite.key,
        "Livy password": LIVY_PASSWORD,
        "file key": FILE_KEY,
        "file Livy password": FILE_LIVY_PASSWORD,
    }
    return {"project": project, "env": env, "forbidden": _forbidden(secrets), "tmp": tmp_path,
            "connection": azurite.connection_string}


def _check_job_environment(printed: str) -> None:
    names_line = next((line for line in printed.splitlines() if line.startswith("NAMES ")), None)
    assert names_line is not None, f"the job's NAMES line is not in what it printed:\n{printed}"
    names = set(names_line.split()[1:])
    assert COPIES <= names  # the job really printed its environment
    assert not names & set(CREDENTIAL_VARIABLES), names & set(CREDENTIAL_VARIABLES)


def _check_no_leaks(printed: str, files: list[Path], setup: dict) -> None:
    forbidden = setup["forbidden"]
    assert _leaks(printed, forbidden) == []
    assert setup["connection"] not in printed
    leaked = {str(path): _leaks(path.read_bytes(), forbidden) for path in files}
    assert {path: names for path, names in leaked.items() if names} == {}


def test_a_local_job_with_azure_history_leaks_no_secret(setup, azurite, azurite_container):
    env = dict(setup["env"], SPARKJOBS_HISTORY=f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net/team")
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(setup["project"]), "job.py", env=env)
    assert done.returncode == 0, done.stderr
    shown = cli("runs", "show", record["id"], "--log", "--project", str(setup["project"]), env=env)
    assert shown.returncode == 0, shown.stderr
    printed = done.stdout + done.stderr + shown.stdout + shown.stderr
    _check_job_environment(printed)
    assert "COPY_OF_LIVY ***" in printed  # masked, not dropped: the line is still there

    container = azurite.container_client(azurite_container)
    names = [blob.name for blob in container.list_blobs()]
    assert f"team/runs/{record['id']}/driver.log" in names
    log = container.download_blob(f"team/runs/{record['id']}/driver.log").readall().decode()
    assert "NAMES " in log and "COPY_OF_KEY ***" in log
    for name in names:
        blob = container.download_blob(name).readall()
        assert _leaks(blob, setup["forbidden"]) == [], name
        assert setup["connection"].encode() not in blob, name
    files = [p for p in (setup["tmp"] / "home").rglob("*") if p.is_file()]
    _check_no_leaks(printed, files, setup)


def test_a_local_job_with_local_history_leaks_no_secret(setup):
    env = setup["env"]
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(setup["project"]), "job.py", env=env)
    assert done.returncode == 0, done.stderr
    _check_job_environment(done.stderr)
    log = setup["tmp"] / "home" / "runs" / record["id"] / "driver.log"
    assert "NAMES " in log.read_text()
    files = [p for p in (setup["tmp"] / "home").rglob("*") if p.is_file()]
    _check_no_leaks(done.stdout + done.stderr, files, setup)


# ---- the bootstrap's own driver log (spark and cluster targets write it to storage) ----------


def test_the_bootstrap_masks_its_driver_log_with_the_credentials_file(tmp_path):
    """The bootstrap cannot import sparkjobs: the submitter puts every form of the secrets in the
    credentials file, and the bootstrap masks them in the log it writes to storage."""
    import json
    import subprocess
    import sys

    from sparkjobs.bootstrap import BOOTSTRAP_PATH
    from sparkjobs.credentials import driver_credentials

    key = base64.b64encode(b"a made-up storage key, 48 bytes long, for tests.").decode()
    (tmp_path / "job.py").write_text(
        "import base64, os\nfrom urllib.parse import quote\nvalue = os.environ['COPY']\n"
        "print(value)\nprint(quote(value, safe=''))\nprint(base64.b64encode(b'x' + value.encode()).decode())\n"
        "print('still here')\n"
    )
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps(driver_credentials({"fs.azure.account.key.acct.blob.core.windows.net": key})))
    spec = {"version": 1, "run_id": "r", "script": "job.py", "args": [], "env": {}, "snapshot_archive": None,
            "outputs_uri": None, "log_uri": (tmp_path / "store" / "driver.log").as_uri(), "credentials_uri": str(credentials)}
    (tmp_path / "launch.json").write_text(json.dumps(spec))
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYSPARK_GATEWAY")}
    env["COPY"] = key
    done = subprocess.run([sys.executable, str(BOOTSTRAP_PATH), str(tmp_path / "launch.json")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "store" / "driver.log").read_text()
    assert "still here" in log and log.count("***") == 3
    assert _leaks(log, _forbidden({"key": key})) == []
    assert not credentials.exists()


@pytest.mark.spark
def test_a_spark_target_job_with_storage_leaks_no_secret(setup, spark_cluster):
    """The spark target runs the driver here (the environment is this process's) and, with
    storage, the bootstrap writes the driver log there itself: it gets the run's secrets to mask."""
    import sys

    project, tmp = setup["project"], setup["tmp"]
    write(
        project / "aml_config" / "stored.compute",
        f"""
        type: spark
        master: {spark_cluster.master_url}
        nativeSharedDirectory: {tmp / "share"}/
        storage: file://{tmp / "store"}
        conf:
          spark.driver.host: 127.0.0.1
          spark.ui.enabled: false
          spark.executor.memory: 512m
        """,
    )
    write(project / "aml_config" / "stored.runconfig", 'Target: stored\nArgumentVector: ["$file"]\n')
    write(project / "spark_job.py", "from pyspark.sql import SparkSession\n"
          "spark = SparkSession.builder.getOrCreate()\n" + JOB + "spark.stop()\n")
    env = dict(setup["env"], PYSPARK_PYTHON=sys.executable)
    done, record = cli_json("run", "-c", "stored", "--json", "--project", str(project), "spark_job.py", env=env)
    assert done.returncode == 0, done.stderr
    _check_job_environment(done.stderr)
    stored_log = tmp / "store" / "runs" / record["id"] / "driver.log"
    assert "NAMES " in stored_log.read_text()
    files = [p for root in (tmp / "home", tmp / "store") for p in root.rglob("*") if p.is_file()]
    _check_no_leaks(done.stdout + done.stderr, files, setup)
