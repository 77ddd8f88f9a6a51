"""Run history at scale (issue 10, items 3 and 6): runs list filters and --sort, runs compare, and
the local SQLite index that serves them, kept current with the store (local folder and Azurite).

Records are written straight into the store, as another machine's sparkjobs would write them: no
Spark job is needed to test what is listed. The CLI runs as a real subprocess.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from sparkjobs.history import RunIndex, sync_index
from sparkjobs.runs import Artifact, RunRecord, RunRepository, RunStatus
from sparkjobs.service import SparkJobs
from sparkjobs.storage.local import LocalStore

from helpers import cli, cli_json, write

SHA = {name: name * 64 for name in "abcdef"}


def record(run_id: str, **fields) -> RunRecord:
    base = dict(id=run_id, project="demo", target="local", script="train.py", args=("--alpha", "0.5"),
                status=RunStatus.COMPLETED, started_at="2026-11-01T10:00:00.000Z", snapshot="1" * 64,
                ended_at="2026-11-01T10:01:00.000Z", exit_code=0)
    base.update(fields)
    return RunRecord(**base)


def ids(n: int) -> str:
    """The n-th run id; they sort by start time as real ones do."""
    return f"202611{1 + n // 24:02d}T{n % 24:02d}0000000Z-{n:06x}"


RUNS = [
    record(ids(1), metrics={"accuracy": 0.5}, params={"alpha": 0.5}),
    record(ids(2), target="spark", status=RunStatus.FAILED, exit_code=1, metrics={"accuracy": 0.9}),
    record(ids(3), script="notebooks/train.py", metrics={"accuracy": "Infinity"}),
    record(ids(4), script="score.py", metrics={"accuracy": "-Infinity"}),
    record(ids(5), target="spark", metrics={"accuracy": "NaN"}),
    record(ids(6), status=RunStatus.KILLED, exit_code=None, metrics={"accuracy": "diverged"}),
    record(ids(7), metrics={"accuracy": [0.1, 0.2]}),
    record(ids(8), project="other", metrics={"accuracy": 0.7}),
    record(ids(9)),  # logged no accuracy
]


@pytest.fixture
def history(tmp_path):
    home = tmp_path / "home"
    project = tmp_path / "proj"
    write(project / "aml_config" / "project.yml", "name: demo\n")
    repo = RunRepository(LocalStore(home))
    for run in RUNS:
        repo.save(run)
    env = dict(os.environ, SPARKJOBS_HOME=str(home))
    env.pop("SPARKJOBS_HISTORY", None)
    return {"home": home, "project": project, "repo": repo, "env": env, "tmp": tmp_path}


def listed(history, *args: str) -> list[str]:
    done, runs = cli_json("runs", "list", "--json", "--project", str(history["project"]), *args, env=history["env"])
    assert done.returncode == 0, done.stderr
    return [r["id"] for r in runs]


def one_error(done) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


# ---- runs list: filters, window, sort -------------------------------------------------------------

def test_filters_by_status_target_and_script(history):
    demo = [r.id for r in reversed(RUNS) if r.project == "demo"]
    assert listed(history) == demo  # newest first, this project only
    assert listed(history, "--status", "failed") == [ids(2)]
    assert listed(history, "--status", "failed,killed") == [ids(6), ids(2)]
    assert listed(history, "--target", "spark") == [ids(5), ids(2)]
    # a bare name matches the script in any folder; a path or a pattern matches as written
    assert listed(history, "--script", "train.py") == [i for i in demo if i not in (ids(4),)]
    assert listed(history, "--script", "notebooks/*") == [ids(3)]
    assert listed(history, "--script", "score.py", "--target", "local") == [ids(4)]
    assert listed(history, "--target", "nowhere") == []
    assert ids(8) in listed(history, "--all")


def test_last_keeps_the_newest_runs_and_sort_orders_them(history):
    assert listed(history, "--last", "3") == [ids(9), ids(7), ids(6)]
    assert listed(history, "--last", "3", "--limit", "2") == [ids(9), ids(7)]
    # --last applies after the filters: the 2 newest local runs
    assert listed(history, "--last", "2", "--target", "local") == [ids(9), ids(7)]
    # then --sort orders those runs only: -Infinity, text, NaN and a list, and the one without it
    window = listed(history, "--last", "5", "--sort", "accuracy")
    assert window[:2] == [ids(4), ids(6)] and set(window[2:4]) == {ids(5), ids(7)} and window[4] == ids(9)


def test_sort_by_a_metric_either_way_with_odd_values_after_numbers_and_missing_last(history):
    # Numbers by value (the infinities at their ends), then text, then NaN and lists, then runs without it.
    numbers_up = [ids(4), ids(1), ids(2), ids(3)]  # -Infinity, 0.5, 0.9, Infinity
    up = listed(history, "--sort", "accuracy")
    assert up[:4] == numbers_up
    assert up[4] == ids(6)  # "diverged": text
    assert set(up[5:7]) == {ids(5), ids(7)}  # NaN and a list: no order of their own
    assert up[-1] == ids(9)  # never logged it: last
    down = listed(history, "--sort", "-accuracy")
    assert down[:4] == numbers_up[::-1] and down[4] == ids(6) and down[-1] == ids(9)
    assert listed(history, "--sort=-accuracy") == down == listed(history, "--sort", "accuracy", "--desc")
    assert listed(history, "--sort", "nothing-logged-this") == listed(history)  # all missing: newest first
    assert listed(history, "--sort", "param:alpha")[0] == ids(1)


def test_the_table_shows_the_sorted_metric(history):
    done = cli("runs", "list", "--sort", "-accuracy", "--project", str(history["project"]), env=history["env"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "ACCURACY" in lines[0]
    assert ids(3) in lines[1] and "Infinity" in lines[1]
    assert ids(2) in lines[2] and "0.9" in lines[2]
    assert ids(9) in lines[-1] and " - " in lines[-1]


def test_bad_list_options_are_one_error(history):
    project = str(history["project"])
    assert "'bogus' is not a run status" in one_error(cli("runs", "list", "--status", "bogus", "--project", project, env=history["env"]))
    assert "--desc" in one_error(cli("runs", "list", "--desc", "--project", project, env=history["env"]))
    done = cli("runs", "list", "--last", "x", "--project", project, env=history["env"])  # argparse's: usage, then Error:
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == "Error: Argument --last: must be a whole number, not 'x'."


def test_running_and_lost_are_told_apart(history):
    from sparkjobs.liveness import ProcessIdentity

    repo = history["repo"]
    running = record(ids(10), status=RunStatus.RUNNING, ended_at=None, exit_code=None, owner=ProcessIdentity.current())
    # this machine, this boot, a process that has gone (its start time no longer matches)
    gone = replace(ProcessIdentity.current(), started=-1)
    repo.save(running)
    repo.save(replace(running, id=ids(11), owner=gone))
    assert listed(history, "--status", "lost") == [ids(11)]
    assert listed(history, "--status", "running") == [ids(10)]
    assert listed(history, "--status", "running,lost") == [ids(11), ids(10)]


# ---- runs compare ---------------------------------------------------------------------------------

@pytest.fixture
def compared(history):
    repo = history["repo"]
    first = record(ids(20), args=("--alpha", "0.5", "--epochs=10", "data.csv"), params={"alpha": 0.5, "seed": 1},
                   metrics={"accuracy": 0.9, "loss": 0.3},
                   artifacts=(Artifact("outputs/model.pkl", 10, SHA["a"]), Artifact("outputs/same.txt", 3, SHA["c"])))
    second = replace(first, id=ids(21), target="spark", args=("--alpha", "0.1", "--epochs=10", "data.csv"),
                     params={"alpha": 0.1, "seed": 1}, metrics={"accuracy": 0.8},
                     artifacts=(Artifact("outputs/model.pkl", 12, SHA["b"]), Artifact("outputs/same.txt", 3, SHA["c"]),
                                Artifact("outputs/extra.csv", 5, SHA["d"])))
    repo.save(first)
    repo.save(second)
    return history, first, second


def test_compare_shows_differences_only_then_everything(compared):
    history, first, second = compared
    args = ("--project", str(history["project"]))
    done = cli("runs", "compare", first.id, second.id[-6:], *args, env=history["env"])  # a suffix works too
    assert done.returncode == 0, done.stderr
    out = done.stdout.split("\n\n", 1)[1]  # the table, below the runs' headlines
    assert "--alpha" in out and "0.5" in out and "0.1" in out
    assert "target" in out and "spark" in out
    assert "seed" not in out and "--epochs" not in out and "argument 1" not in out  # equal: hidden
    assert "accuracy" in out and "loss" in out  # metrics side by side, all of them
    assert "outputs/model.pkl" in out and "outputs/extra.csv" in out and "outputs/same.txt" not in out
    whole = cli("runs", "compare", first.id, second.id, "--all", *args, env=history["env"]).stdout.split("\n\n", 1)[1]
    assert "seed" in whole and "--epochs" in whole and "outputs/same.txt" in whole


def test_compare_json_marks_each_row(compared):
    history, first, second = compared
    done, data = cli_json("runs", "compare", first.id, second.id, "--json", "--all", "--project", str(history["project"]),
                          env=history["env"])
    assert done.returncode == 0, done.stderr
    assert data["runs"] == [first.id, second.id]
    params = {row["name"]: row for row in data["params"]}
    assert params["alpha"] == {"name": "alpha", "values": [0.5, 0.1], "differs": True}
    assert params["seed"]["differs"] is False
    args = {row["name"]: row for row in data["args"]}
    assert args["--alpha"]["values"] == ["0.5", "0.1"] and args["--epochs"]["values"] == ["10", "10"]
    assert args["argument 1"]["values"] == ["data.csv", "data.csv"]
    metrics = {row["name"]: row for row in data["metrics"]}
    assert metrics["loss"]["values"] == [0.3, None] and metrics["loss"]["differs"]
    outputs = {row["path"]: row for row in data["outputs"]}
    assert outputs["outputs/model.pkl"]["sha256"] == [SHA["a"], SHA["b"]] and outputs["outputs/model.pkl"]["differs"]
    assert outputs["outputs/extra.csv"]["sha256"] == [None, SHA["d"]]
    assert outputs["outputs/same.txt"]["differs"] is False
    _, default = cli_json("runs", "compare", first.id, second.id, "--json", "--project", str(history["project"]), env=history["env"])
    assert [row["name"] for row in default["params"]] == ["alpha"]
    assert "outputs/same.txt" not in {row["path"] for row in default["outputs"]}


def test_the_service_pages_runs_for_the_web_page(history):
    from sparkjobs.history import RunQuery, SortField, SortKey

    service = SparkJobs(history["env"])
    page = service.query_runs(history["project"], RunQuery(sort=SortKey(SortField.TARGET), limit=3, offset=3))
    assert page.total == 8 and len(page.runs) == 3  # the demo project's runs, a page of them
    assert page.metric_names == ("accuracy",) and page.param_names == ("alpha",)
    by_duration = service.query_runs(history["project"], RunQuery(sort=SortKey(SortField.DURATION, descending=True)))
    assert by_duration.total == 8


def test_compare_service_returns_the_model_the_page_renders(compared):
    history, first, second = compared
    comparison = SparkJobs(history["env"]).compare(history["project"], [first.id, second.id])
    assert [run.id for run in comparison.runs] == [first.id, second.id]
    assert {row.name for row in comparison.only_differences().params} == {"alpha"}


def test_compare_refuses_too_few_too_many_and_unknown_runs(compared):
    history, first, second = compared
    args = ("--project", str(history["project"]))
    env = history["env"]
    assert "2 to 10 runs; 1 given" in one_error(cli("runs", "compare", first.id, *args, env=env))
    assert "2 to 10 runs; 11 given" in one_error(cli("runs", "compare", *[ids(n) for n in range(1, 12)], *args, env=env))
    assert "nosuchrun" in one_error(cli("runs", "compare", first.id, "nosuchrun", *args, env=env))
    assert "more than once" in one_error(cli("runs", "compare", first.id, first.id, *args, env=env))


# ---- the index: a cache of the store ---------------------------------------------------------------

def index_files(home: Path) -> list[Path]:
    return sorted((home / "cache" / "index").glob("runs-*.sqlite"))


def test_the_index_lives_in_the_home_cache_and_is_rebuilt_when_deleted_or_damaged(history):
    before = listed(history, "--sort", "accuracy")
    [index] = index_files(history["home"])
    assert not any(p.suffix == ".sqlite" for p in history["project"].rglob("*"))
    index.unlink()
    assert listed(history, "--sort", "accuracy") == before
    assert index.exists()
    index.write_bytes(b"this is not a database" * 100)
    assert listed(history, "--sort", "accuracy") == before
    with sqlite3.connect(index) as db:  # rebuilt as a real index again
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == len(RUNS)


def test_a_record_written_straight_into_the_store_appears_and_a_changed_one_is_seen(history):
    assert ids(12) not in listed(history)
    store = history["repo"].store
    newcomer = record(ids(12), status=RunStatus.RUNNING, ended_at=None, exit_code=None)
    (history["home"] / "runs" / newcomer.id).mkdir(parents=True)
    (history["home"] / "runs" / newcomer.id / "run.json").write_text(json.dumps(newcomer.to_json()))
    assert listed(history)[0] == ids(12)
    assert listed(history, "--status", "running") == [ids(12)]
    store.put_json(f"runs/{ids(12)}/run.json", replace(newcomer, status=RunStatus.COMPLETED, metrics={"accuracy": 99.0}).to_json())
    assert listed(history, "--status", "running") == []
    assert listed(history, "--sort", "-accuracy")[:2] == [ids(3), ids(12)]  # after Infinity
    # a run whose folder is removed leaves the list at once
    shutil.copytree(history["home"] / "runs" / ids(12), history["tmp"] / "kept")
    shutil.rmtree(history["home"] / "runs" / ids(12))
    assert ids(12) not in listed(history)
    # an ended record edited by hand in place, and one whose files were deleted from a folder left
    # behind, are seen at the hourly check of every record (an ended record is not written again)
    shutil.copytree(history["tmp"] / "kept", history["home"] / "runs" / ids(12))
    assert ids(12) in listed(history)
    edited = replace(RUNS[0], metrics={"accuracy": 1000.0})
    (history["home"] / "runs" / edited.id / "run.json").write_text(json.dumps(edited.to_json()))
    (history["home"] / "runs" / ids(12) / "run.json").unlink()
    assert listed(history, "--sort", "-accuracy")[:2] == [ids(3), ids(12)]
    an_hour_passes(history["home"])
    assert listed(history, "--sort", "-accuracy")[:2] == [ids(3), ids(1)]
    assert ids(12) not in listed(history)


def an_hour_passes(home: Path) -> None:
    """As the index sees it: its last whole check of the store moved an hour back."""
    [index] = index_files(home)
    with closing(sqlite3.connect(index)) as db, db:
        db.execute("UPDATE meta SET value = CAST(value - 3601 AS TEXT) WHERE key = 'full_check'")


def test_a_broken_record_is_left_out_with_one_warning_every_time(history):
    folder = history["home"] / "runs" / ids(13)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text('{"id": "cut sho')
    for _ in range(2):  # read once, remembered as broken, still said
        done = cli("runs", "list", "--project", str(history["project"]), env=history["env"])
        assert done.returncode == 0 and ids(13) not in done.stdout
        assert done.stderr.count("Warning: ") == 1 and ids(13) in done.stderr
    (folder / "run.json").write_text(json.dumps(record(ids(13)).to_json()))  # mended
    assert listed(history)[0] == ids(13)


# ---- Azure Blob (Azurite) -------------------------------------------------------------------------

@pytest.fixture
def blob_history(azurite, azurite_container, tmp_path):
    project = tmp_path / "proj"
    write(project / "aml_config" / "project.yml", "name: demo\n")
    env = dict(os.environ, SPARKJOBS_HOME=str(tmp_path / "home"), AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string,
               SPARKJOBS_HISTORY=f"wasbs://{azurite_container}@{azurite.account}.blob.core.windows.net/team")
    service = SparkJobs(env)
    repo = RunRepository(service.history_store())
    for run in RUNS:
        repo.save(run)
    container = azurite.container_client(azurite_container)
    return {"home": tmp_path / "home", "project": project, "env": env, "repo": repo, "container": container,
            "service": service}


def put_blob(blob_history, run: RunRecord) -> None:
    """Another machine's sparkjobs writing a record: straight into the container, not through ours."""
    blob_history["container"].upload_blob(f"team/runs/{run.id}/run.json", json.dumps(run.to_json()), overwrite=True)


@pytest.mark.azurite
def test_blob_store_lists_filters_and_sorts_through_the_index(blob_history):
    assert listed(blob_history) == [r.id for r in reversed(RUNS) if r.project == "demo"]
    assert listed(blob_history, "--status", "failed") == [ids(2)]
    assert listed(blob_history, "--sort", "-accuracy")[:4] == [ids(3), ids(2), ids(1), ids(4)]
    assert len(index_files(blob_history["home"])) == 1


@pytest.mark.azurite
def test_blob_store_another_machines_new_run_appears_and_its_end_is_seen(blob_history):
    from sparkjobs.runs import new_run_id

    assert listed(blob_history)[0] == ids(9)  # the index is warm
    newcomer = record(new_run_id(), status=RunStatus.RUNNING, ended_at=None, exit_code=None)  # started now, elsewhere
    put_blob(blob_history, newcomer)
    assert listed(blob_history)[0] == newcomer.id
    assert listed(blob_history, "--status", "running") == [newcomer.id]
    put_blob(blob_history, replace(newcomer, status=RunStatus.COMPLETED, metrics={"accuracy": 42.0}))
    assert listed(blob_history, "--status", "running") == []
    assert listed(blob_history, "--sort", "-accuracy")[:2] == [ids(3), newcomer.id]  # after Infinity
    blob_history["container"].delete_blob(f"team/runs/{newcomer.id}/run.json")
    assert newcomer.id not in listed(blob_history)


@pytest.mark.azurite
def test_blob_store_old_ids_copied_in_appear_at_the_whole_store_check(blob_history):
    """A record with an id outside the recent days is found by the whole listing (hourly; here now)."""
    repo, service = blob_history["repo"], blob_history["service"]
    index = RunIndex(service.index_path(repo.store), repo.store.location)
    sync_index(index, repo)
    old = record("20200101T000000000Z-0a0a0a")
    put_blob(blob_history, old)
    sync_index(index, repo)  # within the hour: only the recent days are listed
    assert old.id not in index.ids()
    sync_index(index, repo, full_every=0)
    assert old.id in index.ids()


@pytest.mark.azurite
def test_blob_store_index_rebuilt_when_deleted_and_broken_record_warned(blob_history):
    before = listed(blob_history, "--sort", "accuracy")
    [index] = index_files(blob_history["home"])
    index.unlink()
    assert listed(blob_history, "--sort", "accuracy") == before
    from sparkjobs.runs import new_run_id

    broken = new_run_id()
    blob_history["container"].upload_blob(f"team/runs/{broken}/run.json", b"null")
    for _ in range(2):  # read once, remembered as broken, still said
        done = cli("runs", "list", "--project", str(blob_history["project"]), env=blob_history["env"])
        assert done.returncode == 0 and done.stderr.count(broken) == 1 and "Traceback" not in done.stderr
