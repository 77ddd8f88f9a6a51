"""Run history at scale (issue 10, item 6), its behaviour rather than its speed (bench/history times it):
the runs page reads through the run index, a page at a time, and gives the rows a plain scan of the
records gives; a shared Blob store's index reads each record once, in one request, and sees on the
next request what another machine added or changed.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
import urllib.request
from collections import Counter
from dataclasses import replace

import pytest

from sparkjobs.history import RunIndex, RunQuery, sync_index
from sparkjobs.runs import RunRecord, RunRepository, RunStatus, new_run_id
from sparkjobs.service import SparkJobs
from sparkjobs.storage.local import LocalStore
from sparkjobs.ui.pages import runs_view
from sparkjobs.ui.reads import Scope

from helpers import cli
from test_history import RUNS, blob_history, put_blob, record  # noqa: F401  (blob_history is a fixture)
from ui_runs import UiProcess


def many_runs(count: int = 40) -> list[RunRecord]:
    """Runs oldest first, with ties, text and missing values where a sort must place them."""
    rng = random.Random(3)
    runs = []
    for n in range(count):
        accuracy = rng.choice([round(rng.random(), 1), round(rng.random(), 1), "diverged", None])
        runs.append(record(
            f"202611{1 + n // 24:02d}T{n % 24:02d}0000000Z-{n:06x}",
            status=rng.choice([RunStatus.COMPLETED, RunStatus.COMPLETED, RunStatus.FAILED]),
            target=rng.choice(["local", "spark"]), script=rng.choice(["train.py", "notebooks/train.py", "score.py"]),
            metrics={} if accuracy is None else {"accuracy": accuracy},
            params={"alpha": rng.choice([0.1, 0.5]), "optimizer": rng.choice(["adam", "sgd"])}))
    return runs


def scanned(records: list[RunRecord], *, status: str = "", target: str = "", script: str = "",
            sort: str = "", descending: bool = False) -> list[str]:
    """What the table shows, by a plain scan: every record, filtered and sorted in Python. Numbers
    sort by value, then text; runs without the value come last; ties stay newest first."""
    kept = [r for r in sorted(records, key=lambda r: r.id, reverse=True)
            if (not status or r.status.value == status) and (not target or r.target == target)
            and (not script or r.script == script)]
    if sort:
        kind, name = sort.split(":")
        value = (lambda r: r.metrics.get(name)) if kind == "metric" else (lambda r: r.params.get(name))
        numbers = sorted((r for r in kept if isinstance(value(r), float)), key=value, reverse=descending)
        texts = sorted((r for r in kept if isinstance(value(r), str)), key=value, reverse=descending)
        kept = numbers + texts + [r for r in kept if value(r) is None]
    return [r.id for r in kept]


@pytest.fixture
def table(tmp_path):
    runs = many_runs()
    repo = RunRepository(LocalStore(tmp_path / "home"))
    for run in runs:
        repo.save(run)
    service = SparkJobs({"SPARKJOBS_HOME": str(tmp_path / "home")})
    return runs, Scope(service, None, all_projects=True)


def page_ids(scope: Scope, **params: str) -> tuple[list[str], dict]:
    view = runs_view(scope, {k: [v] for k, v in params.items()})
    return [r["id"] for r in view.data["runs"]], view.data


@pytest.mark.parametrize("params, expected", [
    ({}, {}),
    ({"sort": "metric:accuracy"}, {"sort": "metric:accuracy"}),
    ({"sort_desc": "metric:accuracy"}, {"sort": "metric:accuracy", "descending": True}),
    ({"sort_desc": "param:optimizer", "status": "failed"}, {"sort": "param:optimizer", "descending": True, "status": "failed"}),
    ({"sort": "param:alpha", "target": "spark"}, {"sort": "param:alpha", "target": "spark"}),
    ({"script": "train.py"}, {"script": "train.py"}),  # exactly that script, not notebooks/train.py
])
def test_runs_page_through_the_index_gives_the_rows_of_a_plain_scan(table, params, expected):
    runs, scope = table
    every = scanned(runs, **expected)
    for page in range(1, len(every) // 7 + 3):  # every page, and one past the end (shows the last)
        ids, data = page_ids(scope, size="7", page=str(page), **params)
        assert data["total"] == len(every)
        last = max(1, -(-len(every) // 7))
        assert ids == every[(min(page, last) - 1) * 7:min(page, last) * 7], (params, page)


def test_runs_page_loads_only_its_own_records_and_offers_every_choice(table, monkeypatch):
    runs, scope = table
    page_ids(scope)  # the index is built
    parsed = Counter()
    original = RunRecord.from_json.__func__

    def counted(cls, data, **kwargs):
        parsed[data.get("id")] += 1
        return original(cls, data, **kwargs)

    monkeypatch.setattr(RunRecord, "from_json", classmethod(counted))
    view = runs_view(scope, {"size": ["5"], "sort_desc": ["metric:accuracy"]})
    assert sum(parsed.values()) == 5 and set(parsed) == {r.id for r in view.context["page"].rows}
    choices = view.context["page"].choices
    assert choices["status"] == ["completed", "failed"] and choices["target"] == ["local", "spark"]
    assert choices["script"] == ["notebooks/train.py", "score.py", "train.py"]
    assert choices["columns"] == ["metric:accuracy", "param:alpha", "param:optimizer"]
    assert page_ids(scope, status="no-such-status")[1]["total"] == 0


class CutShort(LocalStore):
    """A real local store whose reads stop as a Ctrl-C would stop them, after ``reads`` records:
    an interrupt cannot be delivered at a chosen point otherwise."""

    def __init__(self, root, reads: int) -> None:
        super().__init__(root)
        self.reads = reads

    def get_if_changed(self, key, stamp):
        self.reads -= 1
        if self.reads < 0:
            raise KeyboardInterrupt
        return super().get_if_changed(key, stamp)


def test_an_index_build_cut_short_keeps_the_newest_runs_it_read_and_resumes(tmp_path):
    runs = many_runs(1200)
    for run in runs:
        RunRepository(LocalStore(tmp_path / "store")).save(run)
    index = RunIndex(tmp_path / "index.sqlite", "the store")
    with pytest.raises(KeyboardInterrupt):
        sync_index(index, RunRepository(CutShort(tmp_path / "store", reads=700)))
    newest = sorted(r.id for r in runs)[-500:]
    assert index.ids() == newest  # written every 500 records, newest first
    reads = CutShort(tmp_path / "store", reads=10_000)
    sync_index(index, RunRepository(reads))
    assert index.ids() == sorted(r.id for r in runs) and reads.reads == 10_000 - 700  # the rest only


def test_a_first_list_of_a_large_store_says_it_reads_every_record_once(tmp_path):
    """A first list of a team's store reads every record (minutes on a large Blob store): the
    user is told, once, and the service's caller can show progress; a later list says nothing."""
    home = tmp_path / "home"
    runs = many_runs(600)
    for run in runs:
        RunRepository(LocalStore(home)).save(run)
    heard: list[tuple[str, int]] = []
    counted: list[int] = []

    def progress(label: str, total: int):
        heard.append((label, total))
        return counted.append

    page = SparkJobs({"SPARKJOBS_HOME": str(home)}).query_runs(None, RunQuery(limit=5), all_projects=True,
                                                               progress=progress)
    assert len(page.runs) == 5 and heard == [("run records indexed", 600)] and sum(counted) == 600

    fresh = tmp_path / "fresh-home"
    shutil.copytree(home / "runs", fresh / "runs")
    env = dict(os.environ, SPARKJOBS_HOME=str(fresh))
    first = cli("runs", "list", "--all", "--last", "3", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("sparkjobs: Reading 600 run records into this machine's index of the run store") == 1
    again = cli("runs", "list", "--all", "--last", "3", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "Reading" not in again.stderr and again.stdout == first.stdout


# ---- a shared Blob store (Azurite) --------------------------------------------------------------

@pytest.mark.azurite
def test_blob_index_reads_each_record_once_in_one_request_then_only_unended_ones(blob_history, monkeypatch):
    repo, service = blob_history["repo"], blob_history["service"]
    index = RunIndex(service.index_path(repo.store), repo.store.location)
    store_type = type(repo.store)
    asked: Counter = Counter()
    original = store_type.get_if_changed

    def counted(self, key, stamp):
        asked[key] += 1
        return original(self, key, stamp)

    def refused(self, *args, **kwargs):
        raise AssertionError("a second request for a record the index reads")

    monkeypatch.setattr(store_type, "get_if_changed", counted)
    monkeypatch.setattr(store_type, "stamp", refused)
    monkeypatch.setattr(store_type, "get_bytes", refused)
    sync_index(index, repo)
    assert asked == Counter({f"runs/{r.id}/run.json": 1 for r in RUNS})
    running = record(new_run_id(), status=RunStatus.RUNNING, ended_at=None, exit_code=None)
    put_blob(blob_history, running)
    asked.clear()
    sync_index(index, repo)  # warm: the new run; the ended ones are not asked for again
    assert asked == Counter({f"runs/{running.id}/run.json": 1})
    asked.clear()
    sync_index(index, repo)  # the running one is asked (a 304: unchanged), nothing is written
    assert asked == Counter({f"runs/{running.id}/run.json": 1})
    assert running.id in index.ids()


@pytest.mark.azurite
def test_runs_page_on_a_shared_blob_store_shows_what_another_machine_added_or_changed(blob_history):
    ui = UiProcess("--port", "0", "--all", env=blob_history["env"], cwd=blob_history["project"])
    try:
        ui.wait_for_url()

        def shown(query: str = "") -> list[str]:
            with urllib.request.urlopen(f"{ui.url}/runs.json{query}", timeout=60) as answer:
                return [r["id"] for r in json.loads(answer.read())["runs"]]

        assert shown() == [r.id for r in reversed(RUNS)]  # the index is built and warm
        elsewhere = record(new_run_id(), status=RunStatus.RUNNING, ended_at=None, exit_code=None)
        put_blob(blob_history, elsewhere)  # another machine's run, straight into the container
        assert shown()[0] == elsewhere.id and shown("?status=running") == [elsewhere.id]
        put_blob(blob_history, replace(elsewhere, status=RunStatus.COMPLETED, metrics={"accuracy": 99.0}))
        assert shown("?status=running") == []
        assert shown("?sort_desc=metric:accuracy")[:2] == [RUNS[2].id, elsewhere.id]  # after Infinity
    finally:
        ui.stop()


@pytest.mark.azurite
def test_runs_list_on_a_blob_store_never_loads_the_azure_sdk(blob_history, tmp_path):
    # Importing azure-storage-blob costs ~0.2 s of CPU on every `runs list` (issue 10: 0.3 s for
    # --last 50): listing and the index's conditional GETs are signed requests of our own.
    from test_startup_imports import _WRAPPER

    import subprocess
    import sys

    def loaded(*args: str) -> tuple[set[str], str]:
        out = tmp_path / "modules.json"
        done = subprocess.run([sys.executable, "-c", _WRAPPER, str(out), "runs", "list", *args], capture_output=True,
                              text=True, env=blob_history["env"], cwd=blob_history["project"], timeout=120,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return set(json.loads(out.read_text())), done.stdout

    def sdk(modules: set[str]) -> list[str]:  # the bare namespaces come from checking the extra is there
        return sorted(m for m in modules if m.startswith(("azure.storage.blob", "azure.core")))

    running = record(new_run_id(), status=RunStatus.RUNNING, ended_at=None, exit_code=None)
    put_blob(blob_history, running)
    cold, shown = loaded("--all")  # builds the index: lists every run and reads every record
    assert running.id in shown and sdk(cold) == []
    put_blob(blob_history, replace(running, status=RunStatus.FAILED, exit_code=3))
    warm, shown = loaded("--all", "--status", "failed")  # a conditional GET sees the change
    assert running.id in shown and sdk(warm) == []


class Counted(LocalStore):
    """A real local store that counts its listings and the records it reads."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.listings = 0
        self.reads: list[str] = []

    def list_folders(self, prefix, start=""):
        self.listings += 1
        return super().list_folders(prefix, start)

    def get_if_changed(self, key, stamp):
        self.reads.append(key.split("/")[1])
        return super().get_if_changed(key, stamp)


def test_a_local_store_is_listed_again_only_when_a_run_folder_came_or_went(tmp_path):
    """Listing 10,000 run folders and checking every record on each list would cost more than the
    list itself; the runs folder's mtime says when a folder came or went, once it is old enough to
    be trusted (a change in the same clock tick leaves it as it was)."""
    runs_folder, repo = tmp_path / "store" / "runs", RunRepository(Counted(tmp_path / "store"))
    for run in many_runs(30):
        repo.save(run)
    running = record(new_run_id(), status=RunStatus.RUNNING, ended_at=None, exit_code=None)
    repo.save(running)
    empty = runs_folder / new_run_id()  # a folder with no record yet, as a run being created has
    empty.mkdir()
    index, store = RunIndex(tmp_path / "index.sqlite", "the store"), repo.store
    sync_index(index, repo)
    assert store.listings == 1 and len(index.ids()) == 31
    sync_index(index, repo)  # the folder changed a moment ago: its mtime cannot be trusted yet
    assert store.listings == 2
    a_while_ago(runs_folder)
    sync_index(index, repo)
    store.reads.clear()
    for _ in range(2):
        sync_index(index, repo)
    assert store.listings == 3 and store.reads == []  # unchanged: nothing listed, nothing read
    repo.save(replace(running, metrics={"accuracy": 0.5}))  # what a running job writes
    repo.save(record(empty.name, status=RunStatus.RUNNING, ended_at=None, exit_code=None))
    sync_index(index, repo)
    assert store.listings == 3 and sorted(store.reads) == sorted([running.id, empty.name])
    assert {running.id, empty.name} <= set(index.ids())
    arrived = record(new_run_id())
    repo.save(arrived)  # a new run folder: the runs folder's mtime moves on
    sync_index(index, repo)
    assert store.listings == 4 and arrived.id in index.ids()
    a_while_ago(runs_folder)
    sync_index(index, repo)
    shutil.rmtree(runs_folder / arrived.id)
    sync_index(index, repo)
    assert store.listings == 6 and arrived.id not in index.ids()


def a_while_ago(folder) -> None:
    """The folder last changed a minute ago, as it has on most lists."""
    past = time.time() - 60
    os.utime(folder, (past, past))
