"""LivyClient against the Livy-protocol test server: every endpoint, auth, base path, CSRF.

Batches here run under real spark-submit (the server's default runner); the scripts only
sleep, and each test deletes its batches or leaves them to the fixture, which kills them.
"""

from __future__ import annotations

import logging

import pytest
import requests

from livy import (
    BatchForgotten,
    BatchNotFound,
    BatchRequest,
    BatchState,
    BearerAuth,
    DuplicateBatchName,
    LivyClient,
    LivyHTTPError,
    LivyTransportError,
    RetryPolicy,
)

LIVE = {BatchState.STARTING, BatchState.RUNNING}


@pytest.fixture
def sleeper(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text("import time\ntime.sleep(120)\n")
    return script


def test_every_batch_endpoint(livy_server, livy_client_factory, sleeper):
    client = livy_client_factory(livy_server)
    assert client.get_version().version == "0.8.0-incubating"
    batch = client.create_batch(BatchRequest(file=str(sleeper), name="nightly", args=["a"]))
    assert (batch.id, batch.name, batch.state in LIVE) == (0, "nightly", True)
    assert client.get_batch(0).name == "nightly"
    assert client.get_batch_by_name("nightly").id == 0
    assert client.get_batch_state(0).state in LIVE
    log = client.get_batch_log(0, offset=0, size=-1)
    assert (log.id, log.offset, log.lines[0]) == (0, 0, "stdout: ")
    second = client.create_batch(BatchRequest(file=f"file://{sleeper}", name="second"))
    assert second.id == 1
    listing = client.list_batches()
    assert (listing.offset, listing.total, [b.name for b in listing.batches]) == (
        0,
        2,
        ["nightly", "second"],
    )
    assert [b.id for b in client.list_batches(offset=1, size=1).batches] == [1]
    client.delete_batch(0)
    assert livy_server.batch_count() == 1
    with pytest.raises(BatchForgotten, match="Session '0' not found"):
        client.get_batch(0)
    with pytest.raises(BatchNotFound) as never:
        client.get_batch(99)
    assert type(never.value) is BatchNotFound and never.value.status == 404
    assert "HTTP 404" in str(never.value)


def test_basic_auth_and_base_path(livy_server_factory, gateway_factory, gateway_client_factory):
    """As on HDInsight: the gateway checks the login and serves Livy under /livy."""
    gateway = gateway_factory(livy_server_factory().url, auth=("admin", "S3cret!"))
    assert gateway.url.endswith("/livy") and gateway.url.startswith("https://")
    client = gateway_client_factory(gateway)
    assert client.get_version().version and client.list_batches().total == 0
    with pytest.raises(LivyHTTPError) as denied:
        gateway_client_factory(gateway, auth=("admin", "wrong")).get_version()
    assert denied.value.status == 401
    assert "HTTP 401" in str(denied.value) and "Access is denied" in str(denied.value)
    wrong_base = gateway_client_factory(gateway, url=gateway.origin)
    with pytest.raises(LivyHTTPError) as lost:
        wrong_base.get_batch(0)
    assert type(lost.value) is LivyHTTPError and "base path" in str(lost.value)


def test_bearer_auth_tls_and_timeout_defaults():
    prepared = BearerAuth("tok-123")(requests.Request("GET", "http://x/").prepare())
    assert prepared.headers["Authorization"] == "Bearer tok-123"
    assert "tok-123" not in repr(BearerAuth("tok-123"))
    client = LivyClient("https://cluster.azurehdinsight.net/livy/")
    assert client.transport.session.verify is True and client.transport.timeout == (10.0, 60.0)
    assert client.transport.base_url == "https://cluster.azurehdinsight.net/livy"
    assert (
        LivyClient("https://h/livy", verify="/etc/ca.pem").transport.session.verify == "/etc/ca.pem"
    )


def test_x_requested_by_is_sent_and_csrf_rejects_without_it(
    livy_server, livy_client_factory, sleeper
):
    bare = requests.post(livy_server.url + "/batches", json={"file": str(sleeper)}, timeout=10)
    assert bare.status_code == 400 and "text/html" in bare.headers["Content-Type"]
    assert "CSRF" in bare.text and livy_server.batch_count() == 0
    created = requests.post(
        livy_server.url + "/batches",
        json={"file": str(sleeper), "name": "raw"},
        headers={"X-Requested-By": "test"},
        timeout=10,
    )
    assert (created.status_code, created.headers["Location"]) == (201, "/0")
    client = livy_client_factory(livy_server)
    client.delete_batch(0)  # a DELETE the CSRF filter lets through
    assert livy_server.batch_count() == 0
    with pytest.raises(BatchNotFound):
        client.delete_batch(0)


def test_validation_errors_are_clear_and_post_is_not_retried(
    livy_server, livy_client_factory, tmp_path
):
    client = livy_client_factory(livy_server)
    job = str(tmp_path / "job.py")
    cases = [
        ({"file": job, "pyfiles": ["x.zip"]}, 'Unrecognized field "pyfiles"'),
        ({"name": "x"}, "Rejected, Reason: File is required."),
        ({"file": "job.py"}, "Path 'job.py' is not absolute."),
        (
            {"file": "/opt/elsewhere/job.py"},
            "Local path /opt/elsewhere/job.py cannot be added to user sessions.",
        ),
        (
            {"file": job, "conf": {"spark.master": "yarn"}},
            "Blacklisted configuration values in session config: spark.master",
        ),
    ]
    for body, expected in cases:
        with pytest.raises(LivyHTTPError) as rejected:
            client.transport.request("POST", "/batches", body=body)
        assert rejected.value.status == 400
        assert expected in str(rejected.value) and "HTTP 400" in str(rejected.value)
    with pytest.raises(LivyHTTPError, match="is not absolute"):
        client.create_batch(BatchRequest(file="job.py", name="relative"))
    assert livy_server.count("POST", "/batches") == len(cases) + 1
    assert livy_server.batch_count() == 0


def test_duplicate_name_is_refused_clearly(livy_server, livy_client_factory, sleeper):
    client = livy_client_factory(livy_server)
    client.create_batch(BatchRequest(file=str(sleeper), name="nightly"))
    with pytest.raises(DuplicateBatchName) as dup:
        client.create_batch(BatchRequest(file=str(sleeper), name="nightly"))
    assert "HTTP 400" in str(dup.value) and "Duplicate session name: Some(nightly)" in str(
        dup.value
    )
    assert livy_server.batch_count() == 1


def test_a_name_is_required_to_create(livy_server, livy_client_factory, sleeper):
    with pytest.raises(ValueError, match="unique_name"):
        livy_client_factory(livy_server).create_batch(BatchRequest(file=str(sleeper)))


def test_gateway_html_pages_and_get_retries(livy_server, gateway_factory, gateway_client_factory):
    gateway = gateway_factory(livy_server.url)
    patient = gateway_client_factory(gateway, retry=RetryPolicy(attempts=4, backoff=0))
    gateway.fail_next(3, 502)
    assert patient.get_version().version  # three 502s, then the answer
    assert gateway.faults_left() == 0 and livy_server.count("GET", "/version") == 1
    impatient = gateway_client_factory(gateway, retry=RetryPolicy(attempts=1))
    gateway.fail_next(1, 503)
    with pytest.raises(LivyHTTPError) as unavailable:
        impatient.get_version()
    assert unavailable.value.status == 503
    assert str(unavailable.value).startswith("Livy answered HTTP 503 to GET https://127.0.0.1")
    assert "Service Unavailable" in str(unavailable.value) and "<" not in str(unavailable.value)


def test_no_server_is_a_transport_error(livy_server_factory):
    server = livy_server_factory()
    url = server.url
    server.stop()
    client = LivyClient(url, retry=RetryPolicy(attempts=2, backoff=0), timeout=(2.0, 2.0))
    with pytest.raises(LivyTransportError, match=r"GET http://127\.0\.0\.1"):
        client.get_version()


def test_retry_policy_retries_only_idempotent_calls():
    retry = RetryPolicy(attempts=5, backoff=0.5, backoff_max=4.0, jitter=0.25).to_urllib3()
    assert retry.total == 4 and retry.status_forcelist == (429, 502, 503, 504)
    assert retry.is_retry("GET", 503) and retry.is_retry("DELETE", 502)
    assert not retry.is_retry("POST", 503) and not retry.is_retry("GET", 500)
    assert retry.backoff_jitter == 0.25 and retry.backoff_max == 4.0


def test_secret_conf_values_never_reach_the_log(livy_server, livy_client_factory, caplog):
    client = livy_client_factory(livy_server)
    key = "spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net"
    request = BatchRequest(file="/outside/whitelist.py", name="secretive", conf={key: "S3CRET-KEY"})
    with caplog.at_level(logging.DEBUG), pytest.raises(LivyHTTPError):
        client.create_batch(request)
    assert any("secretive" in r.getMessage() for r in caplog.records)
    assert not any("S3CRET-KEY" in r.getMessage() for r in caplog.records)
