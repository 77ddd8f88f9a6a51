"""`sparkjobs ui` over HTTP (issue 10, item 2): what it serves, what it refuses, and that it
changes nothing. The browser-driven tests are in test_ui_browser.py.

The server is the real CLI command in a subprocess, on a run store written by tests/ui_runs.py.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import socket
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from helpers import cli, cli_json
from ui_runs import ENVIRONMENT, FAILED, HOSTILE, NEW, OLD, XSS, UiProcess, make_ui_store, ui_env


def _tree(root: Path) -> dict[str, str]:
    """Every file of the run store (the home folder here), but not sparkjobs' own cache in it: the
    run index is a cache of the store, built on the first listing, not part of it."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0] != "cache"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store = make_ui_store(tmp_path_factory.mktemp("ui"))
    before = _tree(store.home)
    ui = UiProcess("--port", "0", env=ui_env(store), cwd=store.project)
    ui.wait_for_url()
    yield store, ui
    ui.stop()
    assert ui.process.returncode == 0  # SIGTERM (as Ctrl-C) stops it cleanly
    # Nothing any test asked for (GETs, POSTs, DELETEs, traversals) changed the store.
    assert _tree(store.home) == before


def _get(ui: UiProcess, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """The raw request, path sent exactly as given (no client folds '..' away)."""
    where = urlsplit(ui.url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_ui_listens_on_loopback_only_by_default(served):
    store, ui = served
    assert urlsplit(ui.url).hostname == "127.0.0.1"


def test_pages_answer_with_security_headers(served):
    store, ui = served
    for path in ("/", f"/runs/{NEW}", f"/compare?run={OLD}&run={NEW}", "/runs.json"):
        status, headers, _ = _get(ui, path)
        assert status == 200, path
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
        assert "frame-ancestors 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_every_page_has_a_json_twin_that_agrees_with_the_cli(served):
    store, ui = served
    status, _, body = _get(ui, "/runs.json")
    listed = json.loads(body)
    done, records = cli_json("runs", "list", "--json", env=ui_env(store), cwd=store.project)
    assert [r["id"] for r in listed["runs"]] == [r["id"] for r in records]
    status, _, body = _get(ui, f"/runs/{NEW}.json")
    run = json.loads(body)
    assert run["run"]["id"] == NEW and [p["value"] for p in run["metrics"]["accuracy"]] == [0.6, 0.8, 0.9, 0.93, 0.95]
    status, _, body = _get(ui, f"/compare.json?run={OLD}&run={NEW}")
    rows = {(r["section"], r["label"]): r for r in json.loads(body)["rows"]}
    assert rows[("param", "alpha")]["differs"] and not rows[("param", "l1_ratio")]["differs"]
    assert rows[("config", "local.compute: master")]["values"] == ["local[1]", "local[2]"]
    assert ("file", "outputs/predictions.csv") not in rows  # same contents in both runs
    assert rows[("file", "outputs/model.pkl")]["differs"]


def test_the_run_page_shows_the_python_environment_it_shipped(served):
    store, ui = served
    status, _, body = _get(ui, f"/runs/{NEW}")
    page = body.decode()
    assert status == 200
    assert f'title="{ENVIRONMENT.digest}">{ENVIRONMENT.digest[:16]}</span>' in page
    assert "Python 3.8, manylinux2014_x86_64" in page
    assert '<tr><th>msgpack</th><td class="mono">1.0.8</td></tr><tr><th>tabulate</th><td class="mono">0.9.0</td></tr>' in page
    twin = json.loads(_get(ui, f"/runs/{NEW}.json")[2])["run"]["environment"]
    assert twin == {"digest": ENVIRONMENT.digest, "python_version": "3.8", "platform": "manylinux2014_x86_64",
                    "packages": ["msgpack==1.0.8", "tabulate==0.9.0"]}
    assert "Python packages" not in _get(ui, f"/runs/{OLD}")[2].decode()  # it declared none


def test_filters_sort_and_pages_live_in_the_query_string(served):
    store, ui = served
    def ids(query: str) -> list[str]:
        return [r["id"] for r in json.loads(_get(ui, "/runs.json?" + query)[2])["runs"]]

    assert ids("status=failed") == [FAILED]
    assert ids("target=cluster") == [FAILED]
    assert ids("script=train.py&status=completed") == [HOSTILE, NEW, OLD]
    assert ids("sort_desc=metric:accuracy")[:2] == [NEW, OLD]  # runs without the metric come last
    assert ids("sort=metric:accuracy")[:2] == [OLD, NEW]
    assert ids("size=2") == ids("")[:2] and ids("size=2&page=2") == ids("")[2:4]


def test_hostile_metric_arg_and_file_names_come_out_escaped(served):
    store, ui = served
    escaped = "&lt;script&gt;alert("
    for path in ("/", "/?col=metric:" + quote(XSS) + "&col=param:" + quote(XSS), f"/runs/{HOSTILE}", f"/compare?run={HOSTILE}&run={NEW}"):
        status, _, body = _get(ui, path)
        html = body.decode()
        assert status == 200
        assert "<script>alert(" not in html, path
        assert escaped in html, path


def test_artifacts_are_served_only_from_the_record(served):
    store, ui = served
    status, headers, body = _get(ui, f"/runs/{NEW}/download/outputs/model.pkl")
    assert status == 200 and body == store.files[NEW]["outputs/model.pkl"]
    assert headers["content-disposition"].startswith('attachment; filename="model.pkl"')
    status, headers, body = _get(ui, f"/runs/{NEW}/files/outputs/accuracy.png")
    assert status == 200 and headers["content-type"] == "image/png" and body.startswith(b"\x89PNG")
    for path in (
        f"/runs/{NEW}/download/outputs/../run.json",
        f"/runs/{NEW}/download/outputs/%2e%2e/run.json",
        f"/runs/{NEW}/download/outputs/..%2f..%2f{OLD}%2frun.json",
        f"/runs/{NEW}/download/../../{OLD}/outputs/model.pkl",
        f"/runs/{NEW}/download/driver.log",
        f"/runs/{NEW}/download//etc/passwd",
        f"/runs/{NEW}/files/outputs/../../../objects",
        f"/runs/..%2f{OLD}/download/outputs/model.pkl",
        "/runs/../home/runs.json",
        f"/runs/{NEW}/download/outputs/nothing.txt",
        "/static/../reads.py",
    ):
        status, _, body = _get(ui, path)
        assert status == 404, path
        assert b"model trained" not in body and b"root:" not in body


def test_a_file_opened_on_its_own_is_sandboxed_and_only_images_display(served):
    store, ui = served
    status, headers, _ = _get(ui, f"/runs/{HOSTILE}/files/outputs/evil.svg")
    assert headers["content-type"] == "image/svg+xml"
    assert "sandbox" in headers["content-security-policy"] and "script-src" not in headers["content-security-policy"]
    name = quote(f"outputs/{XSS}.txt")
    status, headers, body = _get(ui, f"/runs/{HOSTILE}/files/{name}")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith("attachment") and "<" not in headers["content-disposition"].split(";")[1]


def test_a_spark_table_downloads_as_a_zip(served):
    import io
    import zipfile

    store, ui = served
    status, headers, body = _get(ui, f"/runs/{NEW}/download/outputs/numbers/")
    assert status == 200 and headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.read("numbers/part-00000.csv") == b"n\n1\n2\n"


def test_only_get_and_head_are_answered(served):
    store, ui = served
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = _get(ui, f"/runs/{NEW}", method=method)
        assert status == 405 and headers["allow"] == "GET, HEAD"
    status, _, body = _get(ui, f"/runs/{NEW}", method="HEAD")
    assert status == 200 and body == b""


def test_another_host_name_is_refused(served):
    # A web page elsewhere can point a name of its own at 127.0.0.1 (DNS rebinding); the server
    # answers only to the names of this machine.
    store, ui = served
    status, _, _ = _get(ui, "/runs.json", headers={"Host": "attacker.example:80"})
    assert status == 400
    assert _get(ui, "/runs.json", headers={"Host": "localhost"})[0] == 200


def test_compare_needs_two_to_ten_runs(served):
    store, ui = served
    status, _, body = _get(ui, f"/compare?run={NEW}")
    assert status == 400 and b"Compare takes 2 to 10 different runs, not 1." in body
    status, _, body = _get(ui, "/compare?run=nosuchrun&run=" + NEW)
    assert status == 404 and b"No run &#39;nosuchrun&#39;" in body


def test_a_taken_port_is_one_error_sentence(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        done = cli("ui", "--port", str(port), cwd=tmp_path, env={**ui_env_for(tmp_path)})
    finally:
        holder.close()
    assert done.returncode == 2
    assert done.stderr.strip() == f"Error: Port {port} on 127.0.0.1 is already in use; choose another with --port N."
    assert "Traceback" not in done.stderr and done.stdout == ""


def ui_env_for(tmp_path: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["SPARKJOBS_HOME"] = str(tmp_path / "home")
    env.pop("SPARKJOBS_HISTORY", None)
    return env


def test_without_jinja2_the_error_says_which_extra_to_install(tmp_path):
    import subprocess
    import sys

    code = "import sys; sys.modules['jinja2'] = None; from sparkjobs.cli import main; sys.exit(main(['ui', '--port', '0']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=ui_env_for(tmp_path), timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("Error: The web page needs Jinja2, which the 'ui' extra installs: pip install 'sparkjobs[ui]'.")
