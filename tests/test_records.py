"""Broken run records never crash the CLI (issue 7, section 4).

A record can be cut short, replaced, or edited by hand: ``runs list`` skips each broken one with
one warning naming it and lists the rest (exit 0), and ``runs show`` and ``artifacts download``
refuse it with one ``Error:`` sentence (exit 2). Real runs (Framework Python, through the CLI)
give the valid records; the broken ones are written beside them as newer runs, so that each is
among the newest that ``runs list`` reads.
"""
from __future__ import annotations

import json
import os

import pytest

from helpers import cli, cli_json, make_project, write

BROKEN_ID = "20991231T235959999Z-badbad"  # newer than any real run: listed first


def _edited(**changes):
    def edit(record: dict) -> bytes:
        record = dict(record, id=BROKEN_ID)
        for name, value in changes.items():
            if name == "artifact_size":
                record["artifacts"] = [dict(record["artifacts"][0], size=value)]
            else:
                record[name] = value
        return json.dumps(record).encode()

    return edit


SHAPES = {
    "truncated": lambda record: json.dumps(dict(record, id=BROKEN_ID)).encode()[:60],
    "empty": lambda record: b"",
    "null": lambda record: b"null",
    "list": lambda record: b'[{"id": "%s"}]' % BROKEN_ID.encode(),
    "not utf-8": lambda record: json.dumps(dict(record, id=BROKEN_ID, script="caf\u00e9.py"), ensure_ascii=False).encode("latin-1"),
    "artifacts a string": _edited(artifacts="x"),
    "artifact size a string": _edited(artifact_size="big"),
    "args a number": _edited(args=5),
    "status unknown": _edited(status="exploded"),
    "details not strings": _edited(details={"runconfig": ["local"]}),
    "environment not an object": _edited(environment="abc"),
    "environment packages not strings": _edited(environment={"digest": "d", "python_version": "3.8",
                                                             "platform": "manylinux2014_x86_64", "packages": [1]}),
    "artifact path escapes": _edited(artifacts=[{"path": "outputs/../../x", "size": 1, "sha256": "0" * 64}]),
    "id of another run": lambda record: json.dumps(record).encode(),  # a copy, in the wrong folder
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("records")
    project = make_project(base / "proj", base / "share", framework="Python")
    write(project / "ok.py", "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/a.txt', 'w').write('a')\n")
    env = dict(os.environ, SPARKJOBS_HOME=str(base / "home"))
    env.pop("SPARKJOBS_HISTORY", None)
    records = []
    for _ in range(2):
        done, record = cli_json("run", "-c", "local", "--json", "--project", str(project), "ok.py", env=env)
        assert done.returncode == 0, done.stderr
        records.append(record)
    return {"project": project, "env": env, "home": base / "home", "records": records}


@pytest.fixture(params=sorted(SHAPES))
def broken(request, store):
    folder = store["home"] / "runs" / BROKEN_ID
    folder.mkdir(parents=True)
    (folder / "run.json").write_bytes(SHAPES[request.param](store["records"][0]))
    yield request.param
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def _one_error(done) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


def test_runs_list_skips_a_broken_record_with_one_warning(store, broken):
    project, env = str(store["project"]), store["env"]
    good = [r["id"] for r in reversed(store["records"])]
    # Every shape through the default listing; the other listings read records the same way, so
    # one shape is enough for them (each CLI call is ~0.5 s of CPU, and there are 20 shapes).
    listings = [("runs", "list")]
    if broken == "truncated":
        listings += [("runs", "list", "--all"), ("runs", "list", "--limit", "1")]
    for args in listings:
        done = cli(*args, "--project", project, env=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        warnings = done.stderr.strip().splitlines()
        assert len(warnings) == 1 and warnings[0].startswith("Warning: ") and BROKEN_ID in warnings[0], done.stderr
        assert good[0] in done.stdout and BROKEN_ID not in done.stdout
    done, listed = cli_json("runs", "list", "--json", "--project", project, env=env)
    assert [r["id"] for r in listed] == good


def test_runs_show_refuses_a_broken_record(store, broken):
    for args in (("runs", "show", BROKEN_ID), ("runs", "show", BROKEN_ID, "--json", "--log"), ("runs", "show", "badbad")):
        line = _one_error(cli(*args, "--project", str(store["project"]), env=store["env"]))
        assert BROKEN_ID in line


def test_artifacts_download_refuses_a_broken_record(store, broken, tmp_path):
    done = cli("artifacts", "download", BROKEN_ID, "-o", str(tmp_path / "dest"), "--project", str(store["project"]), env=store["env"])
    assert BROKEN_ID in _one_error(done)
    assert not (tmp_path / "dest").exists()


def test_the_errors_say_what_is_wrong(store, tmp_path):
    folder = store["home"] / "runs" / BROKEN_ID
    folder.mkdir(parents=True)
    try:
        expected = {
            "truncated": "not valid JSON",
            "not utf-8": "not valid UTF-8",
            "null": "must be a JSON object",
            "artifacts a string": "'artifacts'",
            "artifact size a string": "size",
            "args a number": "'args'",
            "id of another run": store["records"][0]["id"],
        }
        for shape, words in expected.items():
            (folder / "run.json").write_bytes(SHAPES[shape](store["records"][0]))
            line = _one_error(cli("runs", "show", BROKEN_ID, "--project", str(store["project"]), env=store["env"]))
            assert words in line, (shape, line)
    finally:
        (folder / "run.json").unlink()
        folder.rmdir()


@pytest.mark.azurite
def test_a_broken_record_in_azure_history(azurite, azurite_container, tmp_path):
    project = make_project(tmp_path / "proj", tmp_path / "share", framework="Python")
    write(project / "ok.py", "print('ok')\n")
    env = dict(os.environ, SPARKJOBS_HOME=str(tmp_path / "home"), AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string,
               SPARKJOBS_HISTORY=f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net/team")
    done, record = cli_json("run", "-c", "local", "--json", "--project", str(project), "ok.py", env=env)
    assert done.returncode == 0, done.stderr
    container = azurite.container_client(azurite_container)
    container.upload_blob(f"team/runs/{BROKEN_ID}/run.json", b"null")
    listed = cli("runs", "list", "--project", str(project), env=env)
    assert listed.returncode == 0 and record["id"] in listed.stdout, listed.stderr
    assert listed.stderr.count(BROKEN_ID) == 1 and "Traceback" not in listed.stderr
    assert BROKEN_ID in _one_error(cli("runs", "show", BROKEN_ID, "--project", str(project), env=env))
    assert BROKEN_ID in _one_error(cli("artifacts", "download", BROKEN_ID, "-o", str(tmp_path / "d"), "--project", str(project), env=env))


def test_download_of_an_artifact_gone_from_the_store_is_one_error(store, tmp_path):
    record = store["records"][1]
    artifact = store["home"] / "runs" / record["id"] / "outputs" / "a.txt"
    kept = artifact.read_bytes()
    artifact.unlink()
    try:
        done = cli("artifacts", "download", record["id"], "-o", str(tmp_path / "d"), "--project", str(store["project"]), env=store["env"])
        line = _one_error(done)
        assert "outputs/a.txt" in line and "no longer" in line
    finally:
        artifact.write_bytes(kept)
