"""Recorded Livy payloads parsed end to end, and the pure parts of the client."""

from __future__ import annotations

import json

import pytest
from livy_server import PAYLOADS

from livy import (
    AppInfo,
    Batch,
    BatchList,
    BatchRequest,
    BatchState,
    BatchStatus,
    LivyProtocolError,
    LogPage,
    Version,
)
from livy._transport import error_message


def payload(name: str) -> object:
    return json.loads((PAYLOADS / name).read_text())


def test_full_batch_from_the_facts_file():
    batch = Batch.from_json(payload("batch_full.json"))
    assert batch == Batch(
        id=0,
        state=BatchState.STARTING,
        state_raw="starting",
        name="nightly",
        app_info=AppInfo(),
        log=("stdout: ", "\nstderr: ", "\nYARN Diagnostics: "),
    )
    assert not batch.state.is_terminal


def test_minimal_old_server_batch():
    batch = Batch.from_json(payload("batch_minimal_old.json"))
    assert (batch.id, batch.state, batch.name, batch.app_id, batch.log) == (
        0,
        BatchState.STARTING,
        None,
        None,
        (),
    )


def test_newer_server_fields_are_ignored():
    batch = Batch.from_json(payload("batch_newer_fields.json"))
    assert batch.app_id == "application_1700000000000_0042"
    assert batch.app_info.spark_ui_url == "http://hn0:8088/proxy/application_1700000000000_0042/"
    assert batch.owner == "admin" and batch.state is BatchState.RUNNING


def test_unknown_state_keeps_raw_string_and_is_not_terminal():
    batch = Batch.from_json(payload("batch_unknown_state.json"))
    assert batch.state is BatchState.UNKNOWN
    assert batch.state_raw == "waiting_for_quota"
    assert batch.state not in BatchState.TERMINAL
    assert batch.app_info == AppInfo() and batch.log == ()


def test_terminal_group():
    assert BatchState.TERMINAL == {
        BatchState.SUCCESS,
        BatchState.DEAD,
        BatchState.KILLED,
        BatchState.ERROR,
    }
    assert {s.value for s in BatchState} >= {
        "not_started",
        "starting",
        "recovering",
        "idle",
        "running",
        "busy",
        "shutting_down",
        "error",
        "dead",
        "killed",
        "success",
    }


def test_state_list_log_version_payloads():
    assert BatchStatus.from_json(payload("batch_state.json")) == BatchStatus(
        0, BatchState.RUNNING, "running"
    )
    listing = BatchList.from_json(payload("batch_list.json"))
    assert (listing.total, [b.state for b in listing.batches]) == (
        2,
        [BatchState.SUCCESS, BatchState.DEAD],
    )
    page = LogPage.from_json(payload("log_page.json"))
    assert page.streams() == {
        "stdout": ("hello", "world"),
        "stderr": ("26/01/01 00:00:00 WARN Utils: careful",),
        "yarn": ("Application finished.",),
    }
    assert Version.from_json(payload("version.json")).version == "0.8.0-incubating"


@pytest.mark.parametrize(
    "body", [{"state": "running"}, {"id": "0", "state": "running"}, {"id": 0}, [], "x"]
)
def test_missing_id_or_state_is_a_protocol_error(body):
    with pytest.raises(LivyProtocolError):
        Batch.from_json(body)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("error_not_found.json", "Session 'nightly' not found."),
        (
            "error_duplicate_name.json",
            "Rejected, Reason: Duplicate session name: Some(nightly) for session 3",
        ),
        ("error_too_many.json", "Rejected, too many sessions are being created!"),
        ("error_unknown_field.json", 'Unrecognized field "pyfiles"'),
        ("csrf_400.html", "Error 400 Missing Required Header for CSRF protection."),
        ("gateway_502.html", "502 - Web server received an invalid response"),
        ("gateway_503.html", "Service Unavailable"),
        ("gateway_401.html", "401 - Unauthorized: Access is denied due to invalid credentials."),
    ],
)
def test_error_bodies_become_one_clear_message(name, expected):
    message = error_message((PAYLOADS / name).read_text())
    assert message.startswith(expected)
    assert len(message) <= 300 and "<" not in message


def test_request_to_json_uses_livy_names_and_omits_unset():
    request = BatchRequest(
        file="wasbs:///jobs/main.py",
        name="nightly",
        py_files=["wasbs:///jobs/lib.zip"],
        args=["--day", "1"],
        conf={"spark.sql.shuffle.partitions": 4, "spark.x.enabled": True},
        driver_memory="4g",
        num_executors=2,
        executor_cores=1,
    )
    assert request.to_json() == {
        "file": "wasbs:///jobs/main.py",
        "name": "nightly",
        "args": ["--day", "1"],
        "pyFiles": ["wasbs:///jobs/lib.zip"],
        "conf": {"spark.sql.shuffle.partitions": "4", "spark.x.enabled": "true"},
        "driverMemory": "4g",
        "executorCores": 1,
        "numExecutors": 2,
    }
    assert BatchRequest(file="/a.py").to_json() == {"file": "/a.py"}


def test_redacted_hides_secret_conf_values_everywhere_it_is_shown():
    secrets = {
        "spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net": "S3CRET-KEY==",
        "spark.hadoop.fs.azure.sas.cont.acct.blob.core.windows.net": "S3CRET-SAS",
        "spark.my.password": "S3CRET-PW",
        "spark.api.token": "S3CRET-TOK",
        "spark.s3.accessKey": "S3CRET-AK",
    }
    request = BatchRequest(file="/a.py", conf={**secrets, "spark.app.flag": "on"})
    assert request.redacted()["conf"] == {**{k: "***" for k in secrets}, "spark.app.flag": "on"}
    for text in (repr(request), str(request)):
        assert not any(value in text for value in secrets.values())
    assert request.to_json()["conf"]["spark.my.password"] == "S3CRET-PW"


def test_request_is_frozen_and_rejects_a_string_for_a_list():
    request = BatchRequest(file="/a.py", args=["x"])
    with pytest.raises(AttributeError):
        request.file = "/b.py"  # type: ignore[misc]
    with pytest.raises(TypeError):
        BatchRequest(file="/a.py", py_files="lib.zip")  # type: ignore[arg-type]
