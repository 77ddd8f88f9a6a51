"""Faults a real Livy deployment shows: Livy's own, injected into the test server, and the
gateway's (502/503 storms, answers dropped or trickling in), injected into the HTTPS gateway
in front of it (tests/gateway/), as HDInsight has.

Tests marked "polling" use the server's ``python`` runner (a fast fake command instead of
spark-submit): they test the client's polling, not Spark.  The others run spark-submit.
Polls use a compressed clock: the client's 5 s schedule, milliseconds of real time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from gateway import Gateway
from livy_server import CompressedClock, LivyTestServer, wait_until

from livy import (
    BatchForgotten,
    BatchHandle,
    BatchMismatch,
    BatchNotFound,
    BatchRequest,
    BatchStartTimeout,
    BatchState,
    BatchTimeout,
    LivyClient,
    LivyHTTPError,
    LivyTransportError,
    RetryPolicy,
    SubmissionUnknown,
)
from livy.batch import FOREIGN_404_GRACE


@pytest.fixture
def sleeper(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(
        "import sys, time\ntime.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 120)\n"
    )
    return script


@dataclass
class Polled:
    server: LivyTestServer
    gateway: Gateway
    handle: BatchHandle
    clock: CompressedClock
    go: Path  # the job exits 0 once this file exists


@pytest.fixture
def polled(livy_server_factory, gateway_factory, gateway_client_factory, tmp_path):
    """Start a python-runner batch that ends when ``go`` exists, polled through the gateway
    on a compressed clock."""
    script = tmp_path / "gated.py"
    script.write_text(
        "import os, sys, time\nend = time.monotonic() + 60\n"
        "while not os.path.exists(sys.argv[1]) and time.monotonic() < end:\n    time.sleep(0.01)\n"
    )

    def start(name: str, before_sleep: Callable[[Polled], None], **client_options) -> Polled:
        server = livy_server_factory(runner="python")
        gateway = gateway_factory(server.url)
        client = gateway_client_factory(gateway, **client_options)
        clock = CompressedClock(before_sleep=lambda: before_sleep(run))
        go = tmp_path / "go"
        request = BatchRequest(file=str(script), args=[str(go)], name=name)
        handle = client.submit(request, sleep=clock.sleep, clock=clock.clock)
        run = Polled(server, gateway, handle, clock, go)
        return run

    return start


def test_polling_wait_survives_502_and_503_storms(polled, caplog):
    storms = iter([(7, 502), (7, 503), None, None])

    def storm_then_finish(run: Polled) -> None:
        step = next(storms, None)
        if step is not None:
            run.gateway.fail_next(*step)
        elif len(run.clock.sleeps) >= 4:
            run.go.touch()

    run = polled("stormy", storm_then_finish, retry=RetryPolicy(attempts=3, backoff=0))
    with caplog.at_level(logging.WARNING, logger="livy"):
        final = run.handle.wait(timeout=3600, interval=5.0)
    assert final.state is BatchState.SUCCESS and run.gateway.faults_left() == 0
    assert any("HTTP 502" in r.message for r in caplog.records)
    assert any("HTTP 503" in r.message for r in caplog.records)


@pytest.mark.parametrize("watch", ["wait", "tail"])
def test_polling_survives_the_404_livy_answers_while_it_starts_again(polled, caplog, watch):
    """Livy restarting answers a plain Jetty 404 for a while before its API is mounted (seen
    in CI through real Livy 0.7.1): a watch must not take it for a wrong URL."""
    storms = iter([(6, 404), None, None])

    def restart_then_finish(run: Polled) -> None:
        step = next(storms, None)
        if step is not None:
            run.gateway.fail_next(*step)
        elif len(run.clock.sleeps) >= 8:
            run.go.touch()

    run = polled(f"restarting-{watch}", restart_then_finish)
    with caplog.at_level(logging.WARNING, logger="livy"):
        if watch == "wait":
            run.handle.wait(timeout=3600, interval=5.0)
        else:
            list(run.handle.tail(3600, interval=5.0))
    assert run.handle.state is BatchState.SUCCESS and run.gateway.faults_left() == 0
    assert any("HTTP 404" in r.message and "will try again" in r.message for r in caplog.records)


def test_a_404_that_is_not_livys_ends_the_wait_once_it_lasts(polled):
    def gone_for_good(run: Polled) -> None:
        if len(run.clock.sleeps) == 1:
            run.gateway.fail_next(10_000, 404)

    run = polled("moved", gone_for_good)
    with pytest.raises(LivyHTTPError, match="HTTP 404") as moved:
        run.handle.wait(timeout=3600, interval=5.0)
    assert not isinstance(moved.value, BatchNotFound)
    waited = run.clock.now - 1000.0
    assert FOREIGN_404_GRACE <= waited <= FOREIGN_404_GRACE + 10
    assert run.gateway.faults_left() > 9_000  # the client gave up: it did not poll the 10,000 through


@pytest.fixture
def gated(livy_server, gateway_factory, gateway_client_factory):
    """The default server behind the gateway, and a client for the gateway's faults to hit."""
    gateway = gateway_factory(livy_server.url)
    return gateway, lambda **options: gateway_client_factory(gateway, **options)


def test_connection_dropped_after_post_starts_one_batch(livy_server, gated, sleeper):
    gateway, client_for = gated
    client = client_for()
    gateway.drop_after_next_post()
    batch = client.create_batch(BatchRequest(file=str(sleeper), name="once"))
    assert batch.name == "once" and livy_server.batch_count() == 1
    assert livy_server.count("POST", "/batches") == 1
    assert livy_server.count("GET", "/batches/once") == 1


def test_gateway_error_before_livy_submits_again_once(livy_server, gated, sleeper):
    gateway, client_for = gated
    client = client_for()
    gateway.fail_next(1, 503, methods=("POST",))  # the gateway never reached Livy
    batch = client.create_batch(BatchRequest(file=str(sleeper), name="again"))
    assert batch.id == 0 and livy_server.batch_count() == 1
    assert livy_server.count("POST", "/batches") == 1  # the 503 never reached Livy
    assert livy_server.count("GET", "/batches/again") == 1  # looked up before submitting again
    assert gateway.faults_left() == 0


def test_unsettled_submission_is_reported_not_repeated(livy_server, gated, sleeper):
    gateway, client_for = gated
    client = client_for(retry=RetryPolicy(attempts=2, backoff=0))
    gateway.drop_after_next_post()
    gateway.fail_next(5, 503)
    with pytest.raises(SubmissionUnknown) as unknown:
        client.create_batch(BatchRequest(file=str(sleeper), name="unsure"))
    assert unknown.value.name == "unsure" and "'unsure'" in str(unknown.value)
    assert livy_server.batch_count() == 1 and livy_server.count("POST", "/batches") == 1


def test_killed_server_side_then_forgotten_after_retention(
    livy_server, livy_client_factory, sleeper
):
    client = livy_client_factory(livy_server)
    clock = CompressedClock()
    handle = client.submit(
        BatchRequest(file=str(sleeper), name="victim"), sleep=clock.sleep, clock=clock.clock
    )
    livy_server.kill_batch(handle.id)
    assert handle.wait(timeout=600, interval=5.0).state is BatchState.KILLED
    livy_server.expire_retention()
    with pytest.raises(BatchForgotten) as forgotten:
        handle.refresh()
    assert "retain" in str(forgotten.value) and forgotten.value.status == 404
    with pytest.raises(BatchForgotten):
        handle.wait(timeout=600, interval=5.0)
    stranger = livy_client_factory(livy_server)
    with pytest.raises(BatchNotFound) as never:
        stranger.get_batch(handle.id)
    assert type(never.value) is BatchNotFound


def test_restart_reuses_ids_and_the_check_catches_it(livy_server, livy_client_factory, sleeper):
    client = livy_client_factory(livy_server)
    old = client.create_batch(BatchRequest(file=str(sleeper), name="before-restart"))
    livy_server.restart()
    new = client.create_batch(BatchRequest(file=str(sleeper), name="after-restart"))
    assert old.id == new.id == 0
    assert client.get_batch_checked(0, "after-restart").name == "after-restart"
    with pytest.raises(BatchMismatch, match="'after-restart', not 'before-restart'"):
        client.get_batch_checked(0, "before-restart")
    with pytest.raises(BatchMismatch):
        client.attach(0, "before-restart")
    with pytest.raises(BatchForgotten):
        client.get_batch_by_name("before-restart")


def test_kill_deletes_and_kills_the_process(livy_server, livy_client_factory, sleeper):
    client = livy_client_factory(livy_server)
    handle = client.submit(BatchRequest(file=str(sleeper), name="doomed"))
    record = livy_server.batch(handle.id)
    assert wait_until(lambda: record.proc is not None)
    handle.kill()
    assert record.proc.poll() is not None and livy_server.batch_count() == 0
    assert handle.state is BatchState.KILLED
    assert handle.wait(timeout=10).state is BatchState.KILLED  # no call: Livy forgot it
    handle.kill()  # twice is fine
    with pytest.raises(BatchForgotten):
        client.get_batch(handle.id)


def test_polling_wait_has_a_deadline(livy_server_factory, livy_client_factory, sleeper):
    server = livy_server_factory(runner="python")
    client = livy_client_factory(server)
    clock = CompressedClock()
    handle = client.submit(
        BatchRequest(file=str(sleeper), name="slow"), sleep=clock.sleep, clock=clock.clock
    )
    with pytest.raises(BatchTimeout, match="still 'running' after the deadline") as late:
        handle.wait(timeout=30, interval=5.0)
    assert late.value.batch_id == handle.id and clock.now - 1000.0 == 30.0
    assert server.count("GET", "/state") == 7  # at 0, 5, ..., 30 s: one call per interval


def test_polling_unknown_state_keeps_waiting(polled):
    seen: list[str] = []

    def observe(run: Polled) -> None:
        seen.append(run.handle.batch.state_raw)
        if len(seen) == 3:
            run.go.touch()

    run = polled("odd", observe)
    record = run.server.batch(run.handle.id)
    assert wait_until(lambda: record.proc is not None)
    record.state = "waiting_for_quota"  # a state a future Livy might send
    final = run.handle.wait(timeout=3600, interval=5.0)
    assert seen[0] == "waiting_for_quota" and final.state is BatchState.SUCCESS


# -- deadlines and answers that cannot be trusted (issue 7) -------------------------------------


def test_an_answer_that_trickles_in_ends_at_the_call_deadline(gated, sleeper):
    gateway, client_for = gated
    client = client_for(deadline=1.0)
    batch = client.create_batch(BatchRequest(file=str(sleeper), args=["30"], name="trickled"))
    gateway.trickle_next(1, every=0.25)  # each read gets a byte well within the read timeout
    with pytest.raises(LivyTransportError, match=r"/batches/0/state did not complete within its deadline of 1 s"):
        client.get_batch_state(batch.id)
    assert gateway.faults_left() == 0
    assert client.get_batch_state(batch.id).id == batch.id  # the next call is answered as usual


def test_a_trickled_answer_to_a_post_is_settled_by_name(livy_server, gated, sleeper):
    gateway, client_for = gated
    client = client_for(deadline=1.0)
    gateway.trickle_next(1, every=0.25, methods=("POST",))
    batch = client.create_batch(BatchRequest(file=str(sleeper), name="slow-answer"))
    assert batch.name == "slow-answer" and livy_server.batch_count() == 1
    assert livy_server.count("POST", "/batches") == 1 and livy_server.count("GET", "/batches/slow-answer") == 1


def test_every_call_has_a_deadline_by_default_and_it_must_be_positive():
    assert LivyClient("http://127.0.0.1:1").transport.deadline == 120.0
    with pytest.raises(ValueError, match="deadline"):
        LivyClient("http://127.0.0.1:1", deadline=0)


def test_a_batch_stuck_starting_times_out_and_is_left_alone(livy_server_factory, livy_client_factory, sleeper):
    server = livy_server_factory(runner="python")
    server.hold_in_starting(1)
    client = livy_client_factory(server)
    clock = CompressedClock()
    handle = client.submit(BatchRequest(file=str(sleeper), name="queued"), sleep=clock.sleep, clock=clock.clock)
    with pytest.raises(BatchStartTimeout, match="still 'starting' after 60 s") as stuck:
        handle.wait(timeout=3600, interval=5.0, start_timeout=60)
    assert isinstance(stuck.value, BatchTimeout) and stuck.value.state == "starting"
    assert clock.now - 1000.0 == 60.0 and server.batch(handle.id).state == "starting"
    with pytest.raises(BatchStartTimeout):  # tail checks the state again before giving up
        list(handle.tail(3600, interval=5.0, start_timeout=30))
    assert server.count("DELETE") == 0


def test_a_running_batch_is_not_held_to_the_start_deadline(polled):
    def finish_late(run: Polled) -> None:
        if len(run.clock.sleeps) == 30:
            run.go.touch()

    run = polled("started", finish_late)
    record = run.server.batch(run.handle.id)
    assert wait_until(lambda: record.proc is not None)
    final = run.handle.wait(timeout=3600, interval=5.0, start_timeout=10)
    assert final.state is BatchState.SUCCESS and len(run.clock.sleeps) >= 30


def test_a_201_naming_another_batch_is_not_taken_for_ours(livy_server, livy_client_factory, sleeper):
    client = livy_client_factory(livy_server)
    other = client.create_batch(BatchRequest(file=str(sleeper), name="someone-else"))
    livy_server.answer_posts_with(other.id, 1, create=True)  # ours is created; the answer names another
    ours = client.create_batch(BatchRequest(file=str(sleeper), name="ours"))
    assert ours.name == "ours" and ours.id != other.id
    assert livy_server.count("POST", "/batches") == 2 and livy_server.count("GET", "/batches/ours") == 1

    livy_server.answer_posts_with(other.id, 1, create=False)  # nothing created: sent once more
    again = client.create_batch(BatchRequest(file=str(sleeper), name="ours-too"))
    assert again.name == "ours-too" and livy_server.batch_count() == 3

    livy_server.answer_posts_with(other.id, 2, create=False)
    with pytest.raises(BatchMismatch) as foreign:
        client.create_batch(BatchRequest(file=str(sleeper), name="never"))
    message = str(foreign.value)
    assert f"batch {other.id} named 'someone-else', not 'never'" in message
    assert "no batch named 'never'" in message and livy_server.batch_count() == 3
