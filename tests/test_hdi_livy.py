"""Smoke tests of real Apache Livy in front of a real YARN (tests/plugins/hdi_cluster.py),
driven by sparkjobs' own ``livy`` client, as an HDInsight cluster is.

Two YARN applications in all, run side by side once for the module: a small PySpark job that
succeeds and a script that fails. Every other check reads what they left, or is refused by
Livy before anything reaches YARN.
"""
from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from plugins.hdi_cluster import HdiCluster, HdiClusterError, HdiOptions, start_hdi_cluster

from livy import (
    Batch,
    BatchRequest,
    BatchState,
    DuplicateBatchName,
    LivyClient,
    LivyHTTPError,
    RetryPolicy,
    unique_name,
)

# The first test may start the cluster (and fetch it, on a new machine) and waits for both jobs.
pytestmark = [pytest.mark.spark, pytest.mark.timeout(900)]

MARKER = "driver-stdout-7c1e"
JOB = textwrap.dedent(f"""\
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    total = spark.range(100).groupBy().sum("id").first()[0]
    print("{MARKER}", spark.version, spark.sparkContext.master, total)
    spark.stop()
    """)
FAILING = 'raise RuntimeError("failing-on-purpose-5d2a")\n'
YARN_APP_ID = re.compile(r"application_\d{10,}_\d{4,}")
WAIT = 600.0  # seconds; a bound, not an expectation: one job takes ~40 s on a quiet machine


@dataclass(frozen=True)
class Finished:
    request: BatchRequest
    batch: Batch


@pytest.fixture(scope="module")
def hdi_livy(hdi_cluster: HdiCluster) -> Iterator[LivyClient]:
    with LivyClient(hdi_cluster.livy_url, timeout=(5.0, 30.0), retry=RetryPolicy(attempts=3, backoff=0.5)) as client:
        yield client


def _script(cluster: HdiCluster, name: str, text: str) -> str:
    path = cluster.upload_dir / f"{name}.py"
    path.write_text(text)
    return path.as_uri()


@pytest.fixture(scope="module")
def finished(hdi_cluster: HdiCluster, hdi_livy: LivyClient) -> dict[str, Finished]:
    """Submit the succeeding and the failing job together, then wait for both (bounded)."""
    sent = {}
    for kind, text in (("ok", JOB), ("failing", FAILING)):
        name = unique_name(f"hdi-{kind}")
        sent[kind] = BatchRequest(file=_script(hdi_cluster, name, text), name=name)
    handles = {kind: hdi_livy.submit(request) for kind, request in sent.items()}
    return {kind: Finished(sent[kind], handle.wait(WAIT, interval=2.0)) for kind, handle in handles.items()}


def _why(cluster: HdiCluster, hdi_livy: LivyClient, batch: Batch) -> str:
    log = "\n".join(hdi_livy.get_batch_log(batch.id, size=-1).lines)
    return f"batch {batch}\n--- Livy's log of the batch\n{log[-3000:]}\n{cluster.diagnostics()}"


def test_batch_succeeds_as_a_yarn_application(hdi_cluster: HdiCluster, hdi_livy: LivyClient,
                                              finished: dict[str, Finished]) -> None:
    batch = finished["ok"].batch
    assert batch.state is BatchState.SUCCESS, _why(hdi_cluster, hdi_livy, batch)
    assert batch.app_id is not None and YARN_APP_ID.fullmatch(batch.app_id), batch
    # The driver ran in a YARN container (cluster mode), on the cluster's Spark, against YARN.
    logs = hdi_cluster.container_logs(batch.app_id)
    driver_out = [text for name, text in logs.items() if name.endswith("/stdout") and MARKER in text]
    assert driver_out, f"no container of {batch.app_id} printed the marker; its logs: {sorted(logs)}"
    assert f"{MARKER} 3.5.3 yarn 4950" in driver_out[0]
    # Livy finds the batch by its name as well as by its id.
    assert hdi_livy.get_batch_by_name(finished["ok"].request.name).id == batch.id


def test_livy_log_is_the_submitters_and_holds_no_driver_output(hdi_cluster: HdiCluster, hdi_livy: LivyClient,
                                                                finished: dict[str, Finished]) -> None:
    for kind in ("ok", "failing"):
        batch = finished[kind].batch
        page = hdi_livy.get_batch_log(batch.id, size=-1)
        text = "\n".join(page.lines)
        assert f"Submitted application {batch.app_id}" in text, _why(hdi_cluster, hdi_livy, batch)
        assert MARKER not in text and "failing-on-purpose-5d2a" not in text, text[-3000:]


def test_failing_script_ends_dead_with_yarn_diagnostics(hdi_cluster: HdiCluster, hdi_livy: LivyClient,
                                                        finished: dict[str, Finished]) -> None:
    batch = finished["failing"].batch
    assert batch.state is BatchState.DEAD, _why(hdi_cluster, hdi_livy, batch)
    assert batch.app_id is not None and YARN_APP_ID.fullmatch(batch.app_id), batch
    streams = hdi_livy.get_batch_log(batch.id, size=-1).streams()
    assert any("User application exited with" in line for line in streams.get("yarn", ())), streams.get("yarn")
    # The Python traceback is the driver's output: it is in YARN's container log only.
    stdout = "".join(t for name, t in hdi_cluster.container_logs(batch.app_id).items() if name.endswith("/stdout"))
    assert "failing-on-purpose-5d2a" in stdout


def test_duplicate_name_is_refused_while_retained(hdi_cluster: HdiCluster, hdi_livy: LivyClient,
                                                  finished: dict[str, Finished]) -> None:
    request = finished["ok"].request
    before = hdi_livy.list_batches().total
    with pytest.raises(DuplicateBatchName) as refused:
        hdi_livy.create_batch(request)
    assert refused.value.status == 400 and request.name in refused.value.message
    assert hdi_livy.get_batch_by_name(request.name).id == finished["ok"].batch.id
    assert hdi_livy.list_batches().total == before


def test_csrf_check_refuses_a_post_without_x_requested_by(hdi_cluster: HdiCluster, hdi_livy: LivyClient) -> None:
    name = unique_name("hdi-csrf")
    body = BatchRequest(file=_script(hdi_cluster, name, JOB), name=name).to_json()
    answer = requests.post(f"{hdi_cluster.livy_url}/batches", json=body, timeout=30)
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("text/html")  # not JSON, as the facts say
    assert "CSRF" in answer.text
    with pytest.raises(LivyHTTPError) as missing:
        hdi_livy.get_batch_by_name(name)
    assert missing.value.status == 404


def test_local_file_outside_the_whitelist_is_refused(hdi_cluster: HdiCluster, hdi_livy: LivyClient,
                                                     tmp_path: Path) -> None:
    outside = tmp_path / "job.py"
    outside.write_text(JOB)
    with pytest.raises(LivyHTTPError) as refused:
        hdi_livy.create_batch(BatchRequest(file=outside.as_uri(), name=unique_name("hdi-outside")))
    assert refused.value.status == 400
    assert "cannot be added to user sessions" in refused.value.message


def test_a_cluster_that_cannot_start_says_which_part_and_why(tmp_path: Path) -> None:
    with pytest.raises(HdiClusterError) as failed:
        start_hdi_cluster(tmp_path, HdiOptions(yarn_memory_mb=-1), timeout=120)
    message = str(failed.value)
    assert message.startswith("YARN (Hadoop 3.3.4 MiniYARNCluster) did not start: it exited with code 1.")
    assert "MiniYarn: YARN did not start:" in message and str(tmp_path / "yarn.log") in message
