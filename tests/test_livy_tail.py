"""Log tailing through Livy's 200-line ring buffer.

The server tests here use the test server's ``python`` runner (a fast fake command instead
of spark-submit): they test polling and the log buffers, not Spark.  The job prints in
chunks, each released by the test's fake ``sleep``, so what each poll sees is fixed and no
assertion depends on timing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from livy_server import CompressedClock, wait_until

from livy import BatchRequest, LogPage
from livy._logtail import LogFollower, overlap

H_OUT, H_ERR, H_YARN = "stdout: ", "\nstderr: ", "\nYARN Diagnostics: "
GATED_PRINTER = """
import os, sys, time
gate, chunks, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for k in range(chunks):
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(gate, f"go-{k}")) and time.monotonic() < deadline:
        time.sleep(0.005)
    for i in range(size):
        print(f"line {k * size + i:05d}")
    sys.stdout.flush()
    print(f"chunk {k} done", file=sys.stderr, flush=True)
"""


def view(out: list[str], err: list[str] = (), yarn: list[str] = ()) -> LogPage:  # type: ignore[assignment]
    lines = (H_OUT, *out, H_ERR, *err, H_YARN, *yarn)
    return LogPage(id=0, offset=0, total=len(lines), lines=lines)


def numbered(start: int, stop: int) -> list[str]:
    return [f"l{i}" for i in range(start, stop)]


# -- the alignment, on synthetic views ---------------------------------------------------


def test_overlap_finds_the_longest_shared_run():
    assert overlap(("a", "b", "c"), ("a", "b", "c", "d")) == 3
    assert overlap(("a", "b", "c"), ("b", "c", "d")) == 2
    assert overlap(("a", "b"), ("x", "y")) == 0
    assert overlap((), ("x",)) == 0


def test_follower_emits_growth_and_slides_with_the_buffer():
    follower = LogFollower(buffer_lines=5)
    assert [x.text for x in follower.feed(view(numbered(0, 3)))] == numbered(0, 3)
    assert [x.text for x in follower.feed(view(numbered(0, 5)))] == numbered(3, 5)
    assert [x.text for x in follower.feed(view(numbered(3, 8)))] == numbered(5, 8)
    assert follower.feed(view(numbered(3, 8))) == []


def test_follower_marks_lost_lines_once_and_never_repeats():
    follower = LogFollower(buffer_lines=5)
    follower.feed(view(numbered(0, 5)))
    out = follower.feed(view(numbered(12, 17)))
    assert out[0].gap and "skipped" in out[0].text and "5" in out[0].text
    assert [x.text for x in out[1:]] == numbered(12, 17)


def test_follower_marks_a_first_view_that_is_already_full():
    out = LogFollower(buffer_lines=5).feed(view(numbered(40, 45), err=["e"]))
    assert out[0].gap and out[0].stream == "stdout" and "earlier" in out[0].text
    assert [(x.stream, x.text) for x in out[1:]] == [("stdout", t) for t in numbered(40, 45)] + [
        ("stderr", "e")
    ]


def test_follower_keeps_streams_apart_and_prints_new_yarn_diagnostics_whole():
    follower = LogFollower()
    follower.feed(view(["o1"], ["e1"], ["Application is running"]))
    out = follower.feed(view(["o1", "o2"], ["e1"], ["Application finished", "exit 0"]))
    assert [(x.stream, x.text, x.gap) for x in out] == [
        ("stdout", "o2", False),
        ("yarn", "Application finished", False),
        ("yarn", "exit 0", False),
    ]


def test_follower_reads_a_view_without_headers_as_one_stream():
    follower = LogFollower()
    page = LogPage(id=0, offset=0, total=2, lines=("a", "b"))
    assert [(x.stream, x.text) for x in follower.feed(page)] == [("log", "a"), ("log", "b")]


def test_tail_window_emits_only_what_overlaps_what_was_seen():
    follower = LogFollower()
    follower.feed(view(numbered(0, 20), ["e0"]))
    window = (*numbered(14, 22), H_ERR, "e0", H_YARN)[-10:]  # a Batch's last 10 lines
    assert [x.text for x in follower.feed_tail(window)] == ["l20", "l21"]
    assert follower.feed_tail(window) == []
    out = follower.feed(view(numbered(0, 24), ["e0", "e1"]))
    assert [x.text for x in out] == ["l22", "l23", "e1"]


def test_tail_window_without_overlap_waits_for_the_whole_log():
    follower = LogFollower()
    follower.feed(view(numbered(0, 3)))
    assert follower.feed_tail((*numbered(30, 38), H_ERR, H_YARN)) == []
    assert follower.feed_tail(("x1", "x2", "diag")) == []
    out = follower.feed(view(numbered(0, 38)))
    assert [x.text for x in out] == numbered(3, 38) and not any(x.gap for x in out)


def test_repeated_identical_lines_are_under_reported_not_duplicated():
    follower = LogFollower(buffer_lines=3)
    follower.feed(view(["tick"] * 3))
    assert follower.feed(view(["tick"] * 3)) == []


# -- through the test server -------------------------------------------------------------


class Gate:
    """Releases one chunk of the job's output per client sleep and waits until it is logged."""

    def __init__(self, server, folder: Path, chunks: int) -> None:
        self.server, self.folder, self.chunks = server, folder, chunks
        self.batch_id: int | None = None
        self.released = 0

    def release(self) -> None:
        if self.batch_id is None or self.released >= self.chunks:
            return
        k = self.released
        (self.folder / f"go-{k}").touch()
        record = self.server.batch(self.batch_id)
        assert wait_until(lambda: f"chunk {k} done" in record.stderr, timeout=30)
        self.released += 1


@pytest.fixture
def gated(livy_server_factory, livy_client_factory, tmp_path):
    def run(chunks: int, size: int) -> tuple[list, object, object, CompressedClock]:
        server = livy_server_factory(runner="python")
        client = livy_client_factory(server)
        script = tmp_path / "printer.py"
        script.write_text(GATED_PRINTER)
        gate = Gate(server, tmp_path, chunks)
        clock = CompressedClock(real=0.0, before_sleep=gate.release)
        request = BatchRequest(
            file=str(script), args=[str(tmp_path), str(chunks), str(size)], name=f"printer-{size}"
        )
        handle = client.submit(request, sleep=clock.sleep, clock=clock.clock)
        gate.batch_id = handle.id
        lines = list(handle.tail(timeout=3600, interval=5.0))
        return lines, handle, server, clock

    return run


def test_tail_is_complete_and_exact_when_polled_often_enough(gated):
    lines, handle, server, clock = gated(chunks=10, size=50)  # 500 lines, 50 per poll
    out = [x.text for x in lines if x.stream == "stdout"]
    assert out == [f"line {i:05d}" for i in range(500)]
    assert [x.text for x in lines if x.stream == "stderr"] == [f"chunk {k} done" for k in range(10)]
    assert not any(x.gap for x in lines)
    assert handle.state.value == "success"
    assert set(clock.sleeps) == {5.0}
    polls = sum(server.count("GET", path) for path in ("/log", "/state", f"/batches/{handle.id}"))
    assert polls <= len(clock.sleeps) + 2  # one request per tick, plus the final drain


def test_tail_marks_lines_lost_to_the_ring_buffer_and_never_repeats(gated):
    lines, handle, _, _ = gated(chunks=4, size=250)  # 250 lines between polls > 200 kept
    out = [x.text for x in lines if x.stream == "stdout" and not x.gap]
    markers = [x for x in lines if x.gap]
    assert markers and all(m.text.startswith("[...") and "skipped" in m.text for m in markers)
    assert len(out) == len(set(out)) and out == sorted(out)
    assert out[-1] == "line 00999" and len(out) < 1000
    assert handle.state.value == "success"


def test_server_ring_buffer_and_log_paging_follow_livy(
    livy_server_factory, livy_client_factory, tmp_path
):
    server = livy_server_factory(runner="python")
    client = livy_client_factory(server)
    script = tmp_path / "many.py"
    script.write_text(
        "import sys\nfor i in range(450):\n    print(f'n{i}')\nprint('oops', file=sys.stderr)\n"
    )
    clock = CompressedClock()
    created = client.create_batch(BatchRequest(file=str(script), name="many"))
    handle = client.attach(created.id, "many", sleep=clock.sleep, clock=clock.clock)
    assert handle.wait(timeout=600, interval=5).state.value == "success"
    whole = client.get_batch_log(handle.id, offset=0, size=-1)
    assert whole.total == 200 + 1 + 3 and whole.lines[1] == "n250" and whole.lines[200] == "n449"
    default = client.get_batch_log(handle.id)
    assert (default.offset, len(default.lines)) == (whole.total - 100, 100)
    page = client.get_batch_log(handle.id, offset=1, size=2)
    assert (page.offset, page.total, page.lines) == (1, whole.total, ("n250", "n251"))
    assert client.get_batch(handle.id).log == whole.lines[-10:]
