"""The end seen soon when Livy's log cannot show it: an "end is likely" probe outside Livy.

On YARN in cluster mode Livy's log holds no driver output and Livy learns the end from YARN
up to 5 s late. The test server lags the final state the same way (``state_poll``); the job
writes an exit record last, as the bootstrap does, and the probe looks for it. Polled on a
compressed clock (``test_livy_cadence.py``): fake seconds, milliseconds of real time.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from livy_server import CompressedClock

from livy import BatchRequest, BatchState, Cadence
from livy._schedule import PROBE_EVERY, Ticker

QUIET_THEN_EXIT = """
import os, sys, time
gates = sys.argv[1]
end = time.monotonic() + 60
print("STARTED", flush=True)
while not os.path.exists(os.path.join(gates, "end")) and time.monotonic() < end:
    time.sleep(0.005)
open(os.path.join(gates, "exit.json"), "w").write('{"exit_code": 0}')  # the bootstrap's last act
time.sleep(0.3)  # then Spark stops and YARN ends the application: many client ticks here
"""
START, END_AT = 1000.0, 1060.0  # fake seconds: a minute of steady state first


class Probe:
    """Looks for the exit record; notes when it was asked and when it first said yes."""

    def __init__(self, clock: CompressedClock, record: Path) -> None:
        self.clock, self.record = clock, record
        self.asked: list[float] = []
        self.found_at: float | None = None
        self.requests_then = -1

    def __call__(self) -> bool:
        self.asked.append(self.clock.now)
        if self.record.exists() and self.found_at is None:
            self.found_at = self.clock.now
        return self.record.exists()


@pytest.fixture
def lagging(livy_server_factory, livy_client_factory, tmp_path: Path):
    # Livy on YARN: the final state only at the server's next look, up to 0.5 real s (25
    # client ticks of 0.02 s: many 5 s polls' worth on the compressed clock) after the exit.
    server = livy_server_factory(runner="python", state_poll=0.5)
    client = livy_client_factory(server)
    script = tmp_path / "quiet.py"
    script.write_text(QUIET_THEN_EXIT)
    return server, client, script, tmp_path


def _run(lagging, *, quietly: bool):
    server, client, script, gates = lagging

    def before_sleep() -> None:
        if clock.now >= END_AT and not (gates / "end").exists():
            (gates / "end").touch()
        if (gates / "exit.json").exists() and not appeared:
            appeared.append(clock.now)  # seen at the latest one sleep later than it appeared

    appeared: list[float] = []

    clock = CompressedClock(real=0.02, before_sleep=before_sleep)
    probe = Probe(clock, gates / "exit.json")
    handle = client.submit(BatchRequest(file=str(script), args=[str(gates)], name="quiet"), sleep=clock.sleep, clock=clock.clock)
    if quietly:
        handle.wait(timeout=3600, interval=Cadence(), ending=probe)
    else:
        list(handle.tail(timeout=3600, interval=Cadence(), ending=probe))
    assert handle.state is BatchState.SUCCESS and appeared
    return server, handle, clock, probe, appeared[0]


@pytest.mark.parametrize("quietly", [False, True], ids=["tail", "wait"])
def test_the_exit_record_makes_the_client_poll_fast_until_the_final_state(lagging, quietly):
    server, handle, clock, probe, appeared = _run(lagging, quietly=quietly)
    at = [START + sum(clock.sleeps[:i]) for i in range(len(clock.sleeps))]  # when each sleep began
    after = [s for s, t in zip(clock.sleeps, at) if t >= appeared + PROBE_EVERY]
    # A second after the record appeared, every tick is a fast one until the final state: no
    # 5 s poll lets the end wait (the old client kept polling once per 5 s, and read the whole
    # log every 4th tick, while Livy's log said nothing of the end).
    assert after and set(after) == {0.5}
    assert probe.found_at is not None and probe.found_at - appeared <= PROBE_EVERY


@pytest.mark.parametrize("quietly", [False, True], ids=["tail", "wait"])
def test_steady_state_stays_one_livy_request_per_5_s_with_the_probe_asked_each_second(lagging, quietly):
    server, handle, clock, probe, _ = _run(lagging, quietly=quietly)
    steady = [t for t in probe.asked if START + 30 <= t < END_AT]
    assert len(steady) >= 25  # about once a second, between Livy's polls
    assert all(b - a >= PROBE_EVERY for a, b in zip(probe.asked, probe.asked[1:]))
    livy = server.count("GET", f"/batches/{handle.id}") + server.count("GET", "/log") + server.count("GET", "/state")
    fast = len([s for s in clock.sleeps if s == 0.5])
    # Slow ticks: every Livy request that is not a fast one is at least 5 s from the last.
    slow_span = sum(clock.sleeps) - 0.5 * fast
    assert livy - fast <= slow_span / 5.0 + 6  # + the backing off (1, 2, 4 s) and the final reads


def test_a_probe_is_asked_while_the_ticker_sleeps_and_ends_the_sleep_early():
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    ticker = Ticker(lambda: now[0], sleep, Cadence.fixed(5.0), timeout=3600)
    assert ticker.pause(lambda: False) is False and sleeps == [1.0] * 5  # the same 5 s, in slices
    asked: list[float] = []
    assert ticker.pause(lambda: asked.append(now[0]) or len(asked) == 3) is True
    assert asked == [5.0, 6.0, 7.0] and now[0] == 7.0  # the tick is now, not at 10 s
    stalled = Ticker(lambda: 0.0, lambda s: sleeps.append(s), Cadence.fixed(5.0), timeout=3600)
    before = len(sleeps)
    assert stalled.pause(lambda: False) is False and len(sleeps) - before <= 8  # bounded if time stands still


@pytest.mark.azurite
def test_a_store_that_cannot_answer_only_turns_the_hint_off(azurite, azurite_container, caplog):
    # The compute's real Azure store, aimed at a port nobody serves: exists() fails.
    import socket

    from sparkjobs.credentials import CredentialKind, StorageCredentials
    from sparkjobs.storage.registry import open_store
    from sparkjobs.targets.livy_execution import RunFiles, _ExitHint

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = azurite.connection_string.replace(f":{azurite.port}/", f":{port}/")
    store = open_store(
        f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net/p",
        StorageCredentials(azurite.account, CredentialKind.CONNECTION_STRING, text, "test"),
    )
    hint = _ExitHint(RunFiles(store, "20261201-000000-abcd"))
    with caplog.at_level("INFO", logger="sparkjobs.targets.livy_execution"):
        assert [hint(), hint(), hint()] == [False, False, False]  # never raises: polling goes on
    said = [r for r in caplog.records if "stopped looking for" in r.getMessage()]
    assert len(said) == 1 and azurite.key not in said[0].getMessage()


# A job on "YARN" (it prints an application id, which the test server takes as the batch's, as
# Livy does from spark-submit's output) that stores its driver log and exit record as the
# bootstrap does, then takes a minute to end: Spark's shutdown, YARN, and Livy's 5 s poll.
RECORDS_THEN_LINGERS = """
import json, os, sys, time
log, exit_record, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("Submitted application application_1764614400000_0007", flush=True)
os.makedirs(os.path.dirname(log), exist_ok=True)
open(log, "w").write("the script's own output\\n")
record = {"run_id": "r", "exit_code": code, "outputs_sha256": {}}
if code == 2:  # the bootstrap stopped the run before the script, and said why
    record["error"] = "Error: these Python dependencies were built for Python 3.8."
open(exit_record, "w").write(json.dumps(record))
time.sleep(60)
"""


def _watched(client, livy_url: str, tmp_path: Path, job: str, args):
    """A batch of ``job`` (given ``args(store_root, run_files)``) and its LivyExecution, with the
    run's files in a local store as the bootstrap would write them."""
    from sparkjobs.storage.local import LocalStore
    from sparkjobs.targets.livy_execution import LivyExecution, RunFiles

    store = LocalStore(tmp_path / "store")
    files = RunFiles(store, "20261201T000000000Z-abcdef")
    script = tmp_path / "job.py"
    script.write_text(job)
    batch = client.create_batch(BatchRequest(file=str(script), args=args(store.root, files), name="sparkjobs-r"))
    return LivyExecution(client, batch, files, livy_url=livy_url, name="sparkjobs-r", cadence=Cadence()), batch


@pytest.mark.parametrize("code", [0, 3, 2])
@pytest.mark.parametrize("quietly", [False, True], ids=["stream", "wait"])
def test_on_yarn_the_run_finishes_from_its_exit_record_without_waiting_for_livys_final_state(
        livy_server_factory, livy_client_factory, tmp_path: Path, code: int, quietly: bool):
    from sparkjobs.runs import RunStatus
    from sparkjobs.targets.livy_execution import DRIVER_LOG_HEADER

    server = livy_server_factory(runner="python")
    execution, batch = _watched(livy_client_factory(server), server.url, tmp_path, RECORDS_THEN_LINGERS,
                                lambda root, files: [str(root / files.driver_log), str(root / files.exit), str(code)])
    lines: list[str] = []
    if not quietly:
        execution.stream(lines.append)
    outcome = execution.wait()
    # Livy still has it running (the job lingers a minute): the run ended at its exit record.
    assert server.batch(batch.id).state == "running"
    assert outcome.status is (RunStatus.COMPLETED if code == 0 else RunStatus.FAILED) and outcome.exit_code == code
    said = {0: None, 3: "The job exited with code 3.", 2: "Error: these Python dependencies were built for Python 3.8."}
    assert outcome.error == said[code]
    assert outcome.details["app_id"] == "application_1764614400000_0007"
    if not quietly:  # the driver log was shown whole
        assert lines[lines.index(DRIVER_LOG_HEADER) + 1:] == ["the script's own output"]


# The bootstrap's copy to storage is not atomic on every filesystem (a local file, a Hadoop
# copyFromLocalFile): the record can exist for a moment with only part of its text.
RECORD_WRITTEN_SLOWLY = """
import json, os, sys, time
exit_record = sys.argv[1]
print("Submitted application application_1764614400000_0008", flush=True)
os.makedirs(os.path.dirname(exit_record), exist_ok=True)
text = json.dumps({"run_id": "r", "exit_code": 0, "outputs_sha256": {}})
with open(exit_record, "w") as handle:
    handle.write(text[:10])
    handle.flush()
    time.sleep(4)
    handle.write(text[10:])
time.sleep(60)
"""


def test_a_half_written_exit_record_is_not_taken_for_the_end(livy_server_factory, livy_client_factory, tmp_path: Path):
    from sparkjobs.runs import RunStatus

    server = livy_server_factory(runner="python")
    execution, _ = _watched(livy_client_factory(server), server.url, tmp_path, RECORD_WRITTEN_SLOWLY,
                            lambda root, files: [str(root / files.exit)])
    outcome = execution.wait()
    assert outcome.status is RunStatus.COMPLETED and outcome.exit_code == 0, outcome.error
