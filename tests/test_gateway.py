"""The HTTPS gateway in front of Livy (tests/gateway/), as HDInsight has one.

Real: TLS with a certificate from a CA made at test time (clients verify it), HTTP basic
auth, Livy served under /livy and forwarded to an upstream Livy (here the Livy-protocol test
server; any Livy URL works), the gateway's HTML error pages, and each injected fault (storms,
dropped answers, slow answers), made by real sockets. Simulated: Ambari under /api/v1 (there
is no Ambari here; see tests/gateway/ambari.py).
"""
from __future__ import annotations

import threading

import pytest
import requests
from gateway import AMBARI_PREFIX, AmbariSim

from livy import BatchRequest, BatchState, LivyHTTPError, LivyTransportError, RetryPolicy


@pytest.fixture
def sleeper(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text("import sys, time\ntime.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)\n")
    return script


@pytest.fixture
def behind(livy_server_factory, gateway_factory):
    """A python-runner Livy-protocol server and a gateway in front of it."""
    server = livy_server_factory(runner="python")
    return server, gateway_factory(server.url)


def test_livy_is_served_under_livy_over_https_with_the_cluster_login(behind, gateway_client_factory, sleeper):
    server, gateway = behind
    assert gateway.url.startswith("https://127.0.0.1:") and gateway.url.endswith("/livy")
    client = gateway_client_factory(gateway)
    handle = client.submit(BatchRequest(file=str(sleeper), name="through-the-gateway"))
    assert handle.wait(timeout=60, interval=0.05).state is BatchState.SUCCESS
    assert server.count("POST", "/batches") == 1 == gateway.count("POST", "/livy/batches")
    assert server.count("GET") == gateway.count("GET")  # every answer came from Livy


def test_any_upstream_livy_url_is_forwarded_with_its_own_base_path(livy_server_factory, gateway_factory, gateway_client_factory):
    server = livy_server_factory(runner="python", base_path="/somewhere/livy")
    client = gateway_client_factory(gateway_factory(server.url))
    assert client.list_batches().total == 0 and server.count("GET", "/batches") == 1


def test_tls_is_verified_against_the_test_ca_even_with_requests_ca_bundle_set(behind, gateway_client_factory, monkeypatch):
    _, gateway = behind
    # A machine-wide bundle that does not hold the test CA: requests lets it override a
    # session's own verify, which must not happen to a CA bundle given to the client.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests.certs.where())
    assert gateway_client_factory(gateway).get_version().version
    with pytest.raises(LivyTransportError, match="TLS failed"):
        gateway_client_factory(gateway, verify=True).get_version()


def test_bad_credentials_get_the_gateways_html_401_and_never_reach_livy(behind):
    server, gateway = behind
    for auth in (("admin", "wrong"), None):
        answer = requests.get(f"{gateway.url}/batches", auth=auth, verify=gateway.tls.ca, timeout=10)
        assert answer.status_code == 401 and answer.headers["Content-Type"].startswith("text/html")
        assert "401 - Unauthorized" in answer.text and answer.headers["WWW-Authenticate"].startswith("Basic")
    assert server.count("GET") == 0


def test_a_storm_is_html_pages_from_the_gateway_that_never_reach_livy(behind):
    server, gateway = behind
    gateway.fail_next(2, 503)
    gateway.fail_next(1, 502)
    statuses = []
    for _ in range(4):
        answer = requests.get(f"{gateway.url}/batches", auth=gateway.auth, verify=gateway.tls.ca, timeout=10)
        statuses.append(answer.status_code)
        if answer.status_code != 200:
            assert answer.headers["Content-Type"].startswith("text/html") and "<html" in answer.text.lower()
            assert str(answer.status_code) in answer.text
    assert statuses == [503, 503, 502, 200] and server.count("GET", "/batches") == 1


def test_a_dropped_answer_comes_after_livy_created_the_batch(behind, sleeper):
    server, gateway = behind
    gateway.drop_after_next_post()
    with pytest.raises(requests.ConnectionError):
        requests.post(
            f"{gateway.url}/batches", json={"file": str(sleeper), "name": "lost-answer"},
            headers={"X-Requested-By": "test"}, auth=gateway.auth, verify=gateway.tls.ca, timeout=10,
        )
    assert server.batch_count() == 1 and server.batch(0).name == "lost-answer"


def test_a_slow_answer_is_held_back_past_the_clients_read_timeout(behind, gateway_client_factory, sleeper):
    server, gateway = behind
    client = gateway_client_factory(gateway, timeout=(5.0, 0.5), retry=RetryPolicy(attempts=1))
    batch = client.create_batch(BatchRequest(file=str(sleeper), args=["0"], name="slow"))
    gateway.delay_next(1, 5.0)
    with pytest.raises(LivyTransportError, match="timed out"):
        client.get_batch(batch.id)
    assert server.count("GET", f"/batches/{batch.id}") == 1  # Livy answered; the gateway held it
    assert client.get_batch(batch.id).name == "slow"


def test_stopping_the_gateway_ends_the_answers_it_holds(behind):
    _, gateway = behind
    gateway.delay_next(1, 600.0)
    outcome: list[object] = []

    def ask() -> None:
        try:
            outcome.append(requests.get(f"{gateway.url}/version", auth=gateway.auth, verify=gateway.tls.ca, timeout=(5, 120)))
        except requests.RequestException as exc:
            outcome.append(exc)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    while gateway.count("GET", "/version") == 0 and asker.is_alive():  # bounded: the request arrives or fails
        asker.join(timeout=0.05)
    gateway.stop()
    asker.join(timeout=30)
    assert not asker.is_alive() and isinstance(outcome[0], requests.RequestException)


def test_ambari_is_simulated_in_its_documented_shapes(livy_server_factory, gateway_factory):
    default_fs = "wasbs://clusterfs@clusteracct.blob.core.windows.net"
    gateway = gateway_factory(livy_server_factory(runner="python").url, ambari=AmbariSim("MyCluster", default_fs))

    def get(path: str, **params: str) -> requests.Response:
        return requests.get(gateway.origin + AMBARI_PREFIX + path, params=params, auth=gateway.auth, verify=gateway.tls.ca, timeout=10)

    clusters = get("/clusters").json()
    assert [item["Clusters"]["cluster_name"] for item in clusters["items"]] == ["MyCluster"]
    hdfs = get("/clusters/MyCluster/configurations/service_config_versions", service_name="HDFS", is_current="true").json()
    [current] = hdfs["items"]
    assert current["is_current"] is True and current["service_name"] == "HDFS"
    core = next(c for c in current["configurations"] if c["type"] == "core-site")
    assert core["properties"]["fs.defaultFS"] == default_fs
    assert "fs.azure.account.keyprovider.clusteracct.blob.core.windows.net" in core["properties"]
    assert get("/clusters/mycluster/configurations/service_config_versions", service_name="HDFS").status_code == 404
    gateway.ambari.error_next(403, "You do not have permissions to access this resource.")
    refused = get("/clusters")
    assert refused.status_code == 403 and refused.json()["message"].startswith("You do not have permissions")
    assert requests.get(gateway.origin + AMBARI_PREFIX + "/clusters", verify=gateway.tls.ca, timeout=10).status_code == 401


def test_a_livy_that_is_down_is_a_502_page_from_the_gateway(gateway_factory, gateway_client_factory):
    gateway = gateway_factory("http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(LivyHTTPError) as down:
        gateway_client_factory(gateway, retry=RetryPolicy(attempts=1)).get_version()
    assert down.value.status == 502 and "<" not in str(down.value)
