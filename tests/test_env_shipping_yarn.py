"""Issue 12, shipping on a cluster target: the run's Python dependencies go through Livy to
real YARN (the session's HDInsight in a box, tests/plugins/hdinsight.py).

Three YARN applications, all in this module because each costs a minute: a first run (the
archive is uploaded once, to ``environments/<digest>/archive.tar.gz``, and given in the batch's
``archives``; the driver in the application master and the executors import msgpack's C
extension and tabulate from it), a second run of the same environment (nothing uploaded: the
bytes this machine sends to Azurite are counted by a relay in front of it), and a run whose
environment claims another Python (one clear error). The environment is built and given to the
real service as in test_env_shipping.py.
"""
from __future__ import annotations

import json
import sys
import uuid

import pytest
from counting_proxy import CountingProxy
from helpers import write
from plugins.hdinsight import HDInsight
from shipped_env import JOB, build_environment, give_environment, job_result, run_in_process

from sparkjobs.runs import RunStatus

pytestmark = [pytest.mark.spark, pytest.mark.azurite, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def yarn(hdinsight: HDInsight, tmp_path_factory):
    folder = tmp_path_factory.mktemp("env-yarn")
    container = f"env-{uuid.uuid4().hex[:12]}"
    project = hdinsight.write_project(folder / "project", container)
    write(project / "job.py", JOB)
    # This machine reaches Azurite through the relay (the cluster's JVMs reach it directly).
    proxy = CountingProxy((hdinsight.azurite.address, 443))
    credentials = hdinsight.write_credentials(folder / "user" / "credentials.json")
    data = json.loads(credentials.read_text())
    for entry in data["storage"].values():
        entry["connection_string"] = entry["connection_string"].replace(
            f"https://{hdinsight.azurite.address}/", f"https://{hdinsight.azurite.address}:{proxy.port}/")
    credentials.write_text(json.dumps(data))
    env = hdinsight.cli_env(credentials, SPARKJOBS_HOME=str(folder / "home"), SPARKJOBS_LIVY_POLL_SECONDS="2")
    environment = build_environment(folder / "environment")
    yield {"project": project, "env": env, "proxy": proxy, "environment": environment, "folder": folder,
           "container": hdinsight.azurite.container_client(container)}
    proxy.stop()


@pytest.fixture(scope="module")
def two_runs(yarn):
    """The same environment twice; the bytes sent to Azurite during each run."""
    runs = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        give_environment(monkeypatch, yarn["environment"])
        for _ in range(2):
            yarn["proxy"].reset()
            record, lines = run_in_process(yarn["project"], "hdi", "job.py", yarn["env"])
            runs.append({"record": record, "lines": lines, "sent": yarn["proxy"].sent})
    return runs


def test_yarn_driver_and_executors_import_from_the_archive_uploaded_once(yarn, two_runs):
    environment = yarn["environment"]
    for run in two_runs:
        assert run["record"].status is RunStatus.COMPLETED, "\n".join(run["lines"][-60:])
        result = job_result(run["lines"])
        # YARN unpacked the batch's archive as ./sparkjobs_env in each container: the driver's
        # (the application master's) and every executor's.
        assert "/sparkjobs_env/msgpack/__init__.py" in result["driver"]["msgpack"], result["driver"]
        assert "/sparkjobs_env/tabulate/__init__.py" in result["driver"]["tabulate"], result["driver"]
        assert result["driver"]["version"] == [1, 0, 8]
        assert len(result["executors"]) == 3
        for row in result["executors"]:
            assert "/sparkjobs_env/msgpack/__init__.py" in row["msgpack"] and row["packer"] == "msgpack._cmsgpack", row
            assert "/sparkjobs_env/tabulate/__init__.py" in row["tabulate"] and row["table"].endswith("x"), row
            assert row["msgpack"].split("/sparkjobs_env/")[0] != result["driver"]["msgpack"].split("/sparkjobs_env/")[0]
    stored = [blob.name for blob in yarn["container"].list_blobs(name_starts_with="team/environments/")]
    assert stored == [f"team/environments/{environment.digest}/{name}" for name in ("COMPLETE", "archive.tar.gz", "manifest.json")]


def test_a_second_run_with_the_same_environment_uploads_nothing(yarn, two_runs):
    size = yarn["environment"].archive.stat().st_size
    first, second = (run["sent"] for run in two_runs)
    # The first run sent the archive (and the snapshot, bootstrap and runtime zip); the second
    # sent requests, a launch spec and the credentials file, far less than the archive alone.
    assert first > size, (first, size)
    assert second < size, (second, size)


def test_an_environment_for_another_python_fails_with_one_clear_error(yarn):
    claimed = build_environment(yarn["folder"] / "environment", claimed="3.8")
    with pytest.MonkeyPatch.context() as monkeypatch:
        give_environment(monkeypatch, claimed)
        record, lines = run_in_process(yarn["project"], "hdi", "job.py", yarn["env"])
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert record.status is RunStatus.FAILED and record.exit_code == 2, "\n".join(lines[-60:])
    assert "built for Python 3.8" in record.error and f"the driver runs Python {here}" in record.error, record.error
    assert sum("built for Python 3.8" in line for line in lines) == 1, "\n".join(lines[-60:])
    assert not any("ImportError" in line or "ModuleNotFoundError" in line for line in lines)
    assert not any(line.startswith("RESULT ") for line in lines)
