"""Artifacts as people think of them (issue 8, item 4), through the real CLI on one real Spark
run: a table Spark wrote is one entry with its file count and size, a Spark ML model too, every
file is still stored and listed in --json, and download copies as ``cp -r`` does without ever
overwriting a file silently."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import cli, cli_json, make_project, write

pytestmark = pytest.mark.spark

JOB = """
import json, os, pickle
from pyspark.ml import Pipeline
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
df = spark.range(0, 6, numPartitions=2).selectExpr("id", "id * id AS square")
df.write.csv("outputs/numbers")
Pipeline(stages=[VectorAssembler(inputCols=["id", "square"], outputCol="features")]).fit(df).write().save("outputs/model")
with open("outputs/model.pkl", "wb") as f:
    pickle.dump({"weights": [1, 2, 3]}, f)
with open("outputs/metrics.json", "w") as f:
    json.dump({"rows": df.count()}, f)
spark.stop()
"""


@pytest.fixture(scope="module")
def spark_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("artifacts-view")
    env = dict(os.environ, SPARKJOBS_HOME=str(base / "home"))
    for name in ("SPARKJOBS_HISTORY", "AZURE_STORAGE_CONNECTION_STRING"):
        env.pop(name, None)
    project = make_project(base / "proj", base / "share")
    write(project / "job.py", JOB)
    done = cli("run", "-c", "local", "job.py", env=env, cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    _, record = cli_json("runs", "show", "--json", cli_json("runs", "list", "--json", env=env, cwd=project)[1][0]["id"],
                         env=env, cwd=project)
    return {"env": env, "project": project, "done": done, "record": record, "home": base / "home"}


def _under(record: dict, folder: str) -> list[dict]:
    return [a for a in record["artifacts"] if a["path"].startswith(folder + "/")]


def _cli(spark_run, *args: str):
    return cli(*args, env=spark_run["env"], cwd=spark_run["project"])


def test_json_lists_every_file_spark_wrote_and_all_are_stored(spark_run):
    record = spark_run["record"]
    names = [Path(a["path"]).name for a in _under(record, "outputs/numbers")]
    assert len(names) == 6 and {"_SUCCESS", "._SUCCESS.crc"} <= set(names)
    assert len([n for n in names if n.startswith("part-") and n.endswith(".csv")]) == 2
    assert len([n for n in names if n.startswith(".part-") and n.endswith(".csv.crc")]) == 2
    stored = spark_run["home"] / "runs" / record["id"]
    assert all((stored / a["path"]).is_file() for a in record["artifacts"])
    assert len(_under(record, "outputs/model")) > 4  # metadata/ and stages/, each with part, .crc and _SUCCESS files


def test_runs_show_lists_a_spark_table_and_a_model_as_one_entry_each(spark_run):
    record = spark_run["record"]
    table, model = _under(record, "outputs/numbers"), _under(record, "outputs/model")
    table_size, model_size = sum(a["size"] for a in table), sum(a["size"] for a in model)
    assert table_size < 1000  # said in bytes, below
    model_kb = f"{model_size / 1000:.1f} kB" if model_size >= 1000 else f"{model_size} bytes"
    metrics = next(a["size"] for a in record["artifacts"] if a["path"] == "outputs/metrics.json")
    pickled = next(a["size"] for a in record["artifacts"] if a["path"] == "outputs/model.pkl")
    shown = _cli(spark_run, "runs", "show", record["id"])
    assert shown.returncode == 0, shown.stderr
    block = shown.stdout[shown.stdout.index("artifacts:"):].splitlines()
    assert block == [
        "artifacts:",
        f"  outputs/metrics.json  {metrics} bytes",
        f"  outputs/model/        (Spark ML model, {len(model)} files, {model_kb})",
        f"  outputs/model.pkl     {pickled} bytes",
        f"  outputs/numbers/      (Spark table, 6 files, {table_size} bytes)",
    ]


def test_the_run_summary_counts_artifacts_as_people_do(spark_run):
    record = spark_run["record"]
    lines = [line for line in spark_run["done"].stderr.splitlines() if line.startswith("sparkjobs: ")]
    files = len(record["artifacts"])
    assert lines[-2:] == [
        f"sparkjobs: Run {record['id']} completed.",
        f"sparkjobs: 4 artifacts ({files} files) stored; see 'sparkjobs runs show {record['id']}'.",
    ]


def test_download_of_a_folder_creates_it_inside_the_destination(spark_run, tmp_path):
    record = spark_run["record"]
    dest = tmp_path / "X"
    done = _cli(spark_run, "artifacts", "download", record["id"][-6:], "outputs/numbers", "-o", str(dest))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    wanted = sorted(Path(a["path"]).name for a in _under(record, "outputs/numbers"))
    assert sorted(p.name for p in (dest / "numbers").iterdir()) == wanted
    assert sorted(done.stdout.splitlines()) == sorted(str((dest / "numbers" / name).resolve()) for name in wanted)
    single = _cli(spark_run, "artifacts", "download", record["id"], "outputs/model.pkl", "-o", str(dest))
    assert single.returncode == 0 and single.stdout == f"{(dest / 'model.pkl').resolve()}\n"
    assert (dest / "model.pkl").read_bytes() == (spark_run["home"] / "runs" / record["id"] / "outputs" / "model.pkl").read_bytes()
    # the whole outputs folder (no path, or 'outputs') lands as its contents
    everything = _cli(spark_run, "artifacts", "download", record["id"], "-o", str(tmp_path / "all"))
    assert everything.returncode == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["metrics.json", "model", "model.pkl", "numbers"]


def test_download_skips_identical_files_and_refuses_to_overwrite_others(spark_run, tmp_path):
    record = spark_run["record"]
    dest = tmp_path / "X"
    assert _cli(spark_run, "artifacts", "download", record["id"], "outputs/numbers", "-o", str(dest)).returncode == 0
    again = _cli(spark_run, "artifacts", "download", record["id"], "outputs/numbers", "-o", str(dest))
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")  # all there already: not a word

    # One file changed, and more to come that are not there yet: refused, and nothing written.
    part = next(p for p in (dest / "numbers").iterdir() if p.name.startswith("part-"))
    part.write_text("mine\n")
    write(dest / "metrics.json", "{}")
    done = _cli(spark_run, "artifacts", "download", record["id"], "-o", str(dest))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"Error: 2 files already exist in {dest} with other contents ({(dest / 'metrics.json').resolve()}, "
        f"{part.resolve()}); nothing was downloaded. Use --overwrite to replace them.\n"
    )
    assert part.read_text() == "mine\n" and not (dest / "model.pkl").exists() and not (dest / "model").exists()

    one = _cli(spark_run, "artifacts", "download", record["id"], "outputs/metrics.json", "-o", str(dest))
    assert one.returncode == 2 and one.stderr == (
        f"Error: {(dest / 'metrics.json').resolve()} already exists with other contents; nothing was downloaded. "
        "Use --overwrite to replace it.\n"
    )
    replaced = _cli(spark_run, "artifacts", "download", record["id"], "-o", str(dest), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    stored = spark_run["home"] / "runs" / record["id"] / "outputs"
    assert part.read_bytes() == (stored / "numbers" / part.name).read_bytes()
    assert json.loads((dest / "metrics.json").read_text()) == {"rows": 6}
    assert not [p for p in dest.rglob("*sparkjobs-partial*")]


def test_download_refuses_a_file_where_a_folder_must_go(spark_run, tmp_path):
    record = spark_run["record"]
    write(tmp_path / "X" / "numbers", "a file, not a folder")
    done = _cli(spark_run, "artifacts", "download", record["id"], "outputs/numbers", "-o", str(tmp_path / "X"), "--overwrite")
    assert done.returncode == 2 and done.stderr.startswith(f"Error: {(tmp_path / 'X' / 'numbers').resolve()} is a file, where outputs/numbers/")
    assert done.stderr.endswith(" needs a folder; nothing was downloaded.\n") and len(done.stderr.splitlines()) == 1
    assert (tmp_path / "X" / "numbers").read_text() == "a file, not a folder"


def test_a_folder_that_only_holds_a_table_stays_a_folder():
    # Seen by trying it: a run whose only output was outputs/t/ (part file and _SUCCESS) was
    # shown as "outputs/  (Spark output, ...)", hiding the table's own name.
    from sparkjobs.artifact_view import EntryKind, group_artifacts
    from sparkjobs.runs import Artifact

    digest = "0" * 64
    files = ["outputs/t/part-0000", "outputs/t/_SUCCESS", "outputs/exports/u/part-0", "outputs/exports/u/_SUCCESS",
             "outputs/m/metadata/part-0", "outputs/m/metadata/_SUCCESS", "outputs/m/data/part-0", "outputs/m/data/_SUCCESS"]
    entries = group_artifacts([Artifact(path, 1, digest) for path in files])
    shown = {entry.path: entry.kind for entry in entries}
    assert shown == {
        "outputs/t/": EntryKind.SPARK_TABLE,
        "outputs/exports/u/": EntryKind.SPARK_TABLE,
        "outputs/m/": EntryKind.SPARK_MODEL,
    }
