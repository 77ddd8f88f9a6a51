"""Adaptive polling: fast while a change is likely, one request per 5 s otherwise.

Batches run on the test server's ``python`` runner and are polled on a compressed clock:
the client's real schedule in fake seconds, milliseconds of real time. A job waits for gate
files that the test creates from the clock's ``before_sleep``, so what it prints, and when
it ends, happens at a chosen point of the schedule.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from livy_server import CompressedClock, wait_until

from livy import BatchRequest, BatchState, Cadence
from livy._logtail import LogFollower
from livy._schedule import Ticker

GATED = """
import os, sys, time
def wait_for(name):
    end = time.monotonic() + 60
    while not os.path.exists(os.path.join(sys.argv[1], name)) and time.monotonic() < end:
        time.sleep(0.005)
print("STARTED", flush=True)
wait_for("finishing")
print("26/11/24 07:33:12 INFO SparkContext: Successfully stopped SparkContext", file=sys.stderr, flush=True)
wait_for("end")
"""


class FakeTime:
    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_cadence_is_fast_after_the_start_then_doubles_up_to_slow():
    time = FakeTime()
    ticker = Ticker(time.clock, time.sleep, Cadence(fast=0.5, slow=5.0, burst=10.0), timeout=3600)
    for _ in range(30):
        ticker.pause()
    assert time.sleeps[:20] == [0.5] * 20  # the first 10 s
    assert time.sleeps[20:25] == [1.0, 2.0, 4.0, 5.0, 5.0] and set(time.sleeps[24:]) == {5.0}
    ticker.kick()  # a change is likely: fast again, for another burst
    ticker.pause()
    assert time.sleeps[-1] == 0.5


def test_a_fixed_interval_stays_fixed_and_bad_cadences_are_refused():
    time = FakeTime()
    ticker = Ticker(time.clock, time.sleep, Cadence.fixed(5.0), timeout=60)
    ticker.kick()
    for _ in range(5):
        ticker.pause()
    assert set(time.sleeps) == {5.0}
    for bad in ({"fast": 0}, {"fast": 6.0, "slow": 5.0}, {"burst": -1}):
        with pytest.raises(ValueError):
            Cadence(**bad)


def test_the_follower_knows_when_the_last_lines_show_output_it_could_not_place():
    follower = LogFollower()
    follower.feed_tail(("stdout: ", "a", "b", "\nstderr: ", "\nYARN Diagnostics: "))
    assert follower.covers(("b", "\nstderr: ", "\nYARN Diagnostics: "))
    follower.feed_tail(("b", "c", "\nstderr: ", "\nYARN Diagnostics: "))  # overlaps: c is placed
    assert follower.covers(("b", "c", "\nstderr: ", "\nYARN Diagnostics: "))
    unplaced = ("x", "y", "\nstderr: ", "\nYARN Diagnostics: ")  # no overlap: lines were missed
    follower.feed_tail(unplaced)
    assert not follower.covers(unplaced) and not follower.covers(("only diagnostics",))


@pytest.fixture
def gated(livy_server_factory, livy_client_factory, tmp_path: Path):
    server = livy_server_factory(runner="python")
    client = livy_client_factory(server)
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    return server, client, script, tmp_path


def test_tail_polls_slowly_in_steady_state_and_fast_once_the_log_says_the_job_is_finishing(gated):
    server, client, script, gates = gated
    start, finishing_at = 1000.0, 1060.0  # fake seconds: a minute of steady state first
    marks: dict[str, int] = {}

    def before_sleep() -> None:
        if clock.now >= finishing_at and "finishing" not in marks:
            marks["finishing"] = len(clock.sleeps)
            (gates / "finishing").touch()
            # The job prints the finishing line in real time, which a loaded machine can stretch
            # past the next compressed tick: the clock moves on once the server holds the line.
            assert wait_until(lambda: any("Successfully stopped" in line for line in server.batch(handle.id).stderr))
        elif "finishing" in marks and clock.sleeps[-1] == 0.5 and "end" not in marks:
            marks["end"] = len(clock.sleeps)
            (gates / "end").touch()  # the client has heard and polls fast: let the job end

    clock = CompressedClock(real=0.02, before_sleep=before_sleep)
    handle = client.submit(BatchRequest(file=str(script), args=[str(gates)], name="finishing"), sleep=clock.sleep, clock=clock.clock)
    lines = [line.text for line in handle.tail(timeout=3600, interval=Cadence())]

    assert handle.state is BatchState.SUCCESS and "STARTED" in lines
    assert any("Successfully stopped SparkContext" in line for line in lines)
    at = [start + sum(clock.sleeps[:i]) for i in range(len(clock.sleeps))]  # when each sleep began
    steady = [s for s, t in zip(clock.sleeps, at) if start + 30 <= t < finishing_at]
    assert len(steady) >= 5 and set(steady) == {5.0}  # one request per 5 s while nothing happens
    after = clock.sleeps[marks["finishing"] :]
    assert after.count(5.0) <= 1  # the next slow tick at most before the finishing line is seen
    assert after[-1] == 0.5 and set(after[after.index(0.5) :]) == {0.5}  # then fast until the end
    polls = sum(server.count("GET", path) for path in ("/log", f"/batches/{handle.id}"))
    assert polls <= len(clock.sleeps) + 2  # one request per tick, plus the final drain


def test_wait_polls_fast_after_the_start_then_once_per_5_s(livy_server_factory, livy_client_factory, tmp_path):
    server = livy_server_factory(runner="python")
    client = livy_client_factory(server)
    script = tmp_path / "quick.py"
    script.write_text("print('done')\n")
    server.hold_in_starting(1)  # stays starting until deleted; the next batch runs at once
    held = client.create_batch(BatchRequest(file=str(script), name="held"))
    clock = CompressedClock(real=0.0)
    handle = client.attach(held.id, "held", sleep=clock.sleep, clock=clock.clock)
    with pytest.raises(Exception, match="still 'starting'"):
        handle.wait(timeout=3600, interval=Cadence(), start_timeout=60)
    assert clock.sleeps[:20] == [0.5] * 20 and max(clock.sleeps) == 5.0  # fast, then backed off
    assert set(clock.sleeps[24:]) == {5.0} and len(clock.sleeps) > 30
    assert server.count("GET", f"/batches/{held.id}/state") <= len(clock.sleeps) + 1
