"""Train a logistic-regression classifier on the Iris data set with Spark ML.

    spark-submit train.py [--alpha 0.01] [--l1-ratio 0.0] [--test-fraction 0.3] [--seed 42]

--alpha     regularisation strength (LogisticRegression.regParam, >= 0). 0 means none;
            larger values shrink the coefficients (try 0.5 to see accuracy drop).
--l1-ratio  mix of the penalty (LogisticRegression.elasticNetParam, 0..1):
            0 = L2 (ridge), 1 = L1 (lasso), in between = elastic net.

Writes to the run's outputs folder: model/ (the Spark ML PipelineModel), model.pkl
(coefficients and intercepts as plain Python lists), metrics.json, confusion.png and
coefficients.png. Keeps state across runs in the shared folder: run_count.txt and
history.csv (one line per run with its accuracy).

Runs under sparkjobs (`sparkjobs run -c local train.py --alpha 0.5`) and under bare
spark-submit: without sparkjobs it writes to ./outputs and reads the shared folder from
AZUREML_NATIVE_SHARE_DIRECTORY or SPARKJOBS_SHARED, as Azure ML Workbench scripts did.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pickle
import re
import sys
import tempfile
import time
from datetime import datetime, timezone

try:
    from sparkjobs import context
except ImportError:  # bare spark-submit, or a cluster without sparkjobs
    context = None

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
LABEL = "species"
DATA = os.path.join("data", "iris.csv")
HISTORY_HEADER = "run_id,finished_utc,alpha,l1_ratio,test_accuracy\n"

STARTED = time.time()


def say(message: str) -> None:
    print(f"[iris {time.time() - STARTED:5.1f}s] {message}", flush=True)


# ---- arguments ----------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Logistic regression on Iris with Spark ML; results go to the outputs folder.",
    )
    parser.add_argument("--alpha", type=float, default=0.01,
                        help="regularisation strength, LogisticRegression.regParam (>= 0; default 0.01)")
    parser.add_argument("--l1-ratio", type=float, default=0.0,
                        help="elasticNetParam: 0 = L2, 1 = L1, between = elastic net (default 0)")
    parser.add_argument("--test-fraction", type=float, default=0.3,
                        help="share of rows held out for evaluation, between 0 and 1 (default 0.3)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the train/test split (default 42)")
    parser.add_argument("--max-iter", type=int, default=100, help="optimiser iterations (default 100)")
    parser.add_argument("--data", default=DATA,
                        help=f"CSV with a header row, relative to the project root (default {DATA})")
    args = parser.parse_args(argv)
    if not args.alpha >= 0:  # also rejects nan
        parser.error(f"--alpha must be 0 or more (got {args.alpha})")
    if not 0 <= args.l1_ratio <= 1:
        parser.error(f"--l1-ratio must be between 0 and 1 (got {args.l1_ratio})")
    if not 0 < args.test_fraction < 1:
        parser.error(f"--test-fraction must be between 0 and 1, exclusive (got {args.test_fraction})")
    if args.max_iter < 1:
        parser.error(f"--max-iter must be 1 or more (got {args.max_iter})")
    return args


# ---- where things go ----------------------------------------------------------------------

def _is_uri(location: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location) is not None


def _folder(location: str) -> str:
    """A folder path or URI ending with a separator, so that folder + 'name' works."""
    return location if location.endswith(("/", os.sep)) else location + ("/" if _is_uri(location) else os.sep)


def outputs_folder() -> str:
    """The run's outputs: a local path, or a URI on cluster targets (Spark writers only)."""
    if context is not None:
        return _folder(context.outputs_path())
    return _folder(os.environ.get("SPARKJOBS_OUTPUTS") or os.path.abspath("outputs"))


def local_outputs_folder(outputs: str) -> str:
    """Where plain-Python files go. On clusters sparkjobs copies ./outputs to the run's
    outputs when the script ends, so small files are written there."""
    folder = os.path.abspath("outputs") + os.sep if _is_uri(outputs) else outputs
    os.makedirs(folder, exist_ok=True)
    return folder


def shared_folder() -> str:
    """The folder kept across runs of this project, ending with a separator."""
    if context is not None:
        return _folder(context.shared_path())
    # Azure ML Workbench style: the variable ends with a separator, so scripts wrote
    # os.environ['AZUREML_NATIVE_SHARE_DIRECTORY'] + 'file'. sparkjobs sets it too.
    if os.environ.get("AZUREML_NATIVE_SHARE_DIRECTORY"):
        return os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"]
    if os.environ.get("SPARKJOBS_SHARED"):
        return _folder(os.environ["SPARKJOBS_SHARED"])
    project = os.path.basename(os.getcwd()) or "project"
    return os.path.join(os.path.expanduser("~"), ".sparkjobs", "share", "default", project) + os.sep


class Files:
    """Read and write small text files in a local folder or at a URI (wasbs://, abfss://,
    hdfs://) through Spark's Hadoop file system, so the same code runs on every target."""

    def __init__(self, spark):
        self._spark = spark

    def _hadoop(self, uri: str):
        jvm = self._spark.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(uri)
        return path.getFileSystem(self._spark.sparkContext._jsc.hadoopConfiguration()), path

    def read(self, location: str) -> str | None:
        if not _is_uri(location):
            try:
                with open(location, encoding="utf-8") as handle:
                    return handle.read()
            except FileNotFoundError:
                return None
        fs, path = self._hadoop(location)
        if not fs.exists(path):
            return None
        return "\n".join(row.value for row in self._spark.read.text(location).collect()) + "\n"

    def write(self, location: str, text: str) -> None:
        if not _is_uri(location):
            os.makedirs(os.path.dirname(location) or ".", exist_ok=True)
            temporary = f"{location}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, location)  # readers never see half a file
            return
        fs, path = self._hadoop(location)
        with tempfile.NamedTemporaryFile("w", suffix=".tmp", delete=False, encoding="utf-8") as handle:
            handle.write(text)
        try:
            jvm = self._spark.sparkContext._jvm
            fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path("file://" + handle.name), path)
        finally:
            os.unlink(handle.name)


# ---- data and model -----------------------------------------------------------------------

def load_iris(spark, location: str):
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    schema = StructType([StructField(name, DoubleType(), False) for name in FEATURES]
                        + [StructField(LABEL, StringType(), False)])
    if _is_uri(location):
        return spark.read.csv(location, header=True, schema=schema)
    if not os.path.exists(location):
        raise SystemExit(f"train.py: data file {location} not found (cwd is {os.getcwd()})")
    if spark.sparkContext.master.startswith("local"):
        return spark.read.csv(os.path.abspath(location), header=True, schema=schema, mode="FAILFAST")
    # On a cluster the executors cannot see this machine's files; 150 rows travel with the job.
    with open(location, newline="", encoding="utf-8") as handle:
        rows = [tuple(float(row[name]) for name in FEATURES) + (row[LABEL],) for row in csv.DictReader(handle)]
    return spark.createDataFrame(rows, schema)


def train(df, args):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    pipeline = Pipeline(stages=[
        StringIndexer(inputCol=LABEL, outputCol="label", stringOrderType="alphabetAsc"),
        VectorAssembler(inputCols=FEATURES, outputCol="features"),
        LogisticRegression(family="multinomial", regParam=args.alpha,
                           elasticNetParam=args.l1_ratio, maxIter=args.max_iter),
    ])
    return pipeline.fit(df)


def confusion_matrix(rows, size: int) -> list[list[int]]:
    """matrix[actual][predicted] counts from rows with label and prediction indices."""
    matrix = [[0] * size for _ in range(size)]
    for row in rows:
        matrix[int(row["label"])][int(row["prediction"])] += 1
    return matrix


# ---- plots --------------------------------------------------------------------------------

def plot(folder: str, matrix, classes, coefficients, title: str) -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display on clusters and CI
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    short = [name.replace("Iris-", "") for name in classes]

    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix, cmap="Blues")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=14,
                    color="white" if count > peak / 2 else "black")
    ax.set_xticks(range(len(short)), short)
    ax.set_yticks(range(len(short)), short)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"Iris test set: {title}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(folder + "confusion.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(short)
    for k, (name, row) in enumerate(zip(short, coefficients)):
        ax.bar([i + (k - (len(short) - 1) / 2) * width for i in range(len(FEATURES))], row, width, label=name)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(FEATURES)), [name.replace("_", " ") for name in FEATURES])
    ax.set_ylabel("coefficient")
    ax.set_title(f"Logistic regression coefficients: {title}", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder + "coefficients.png", dpi=100)
    plt.close(fig)
    return ["confusion.png", "coefficients.png"]


# ---- shared folder ------------------------------------------------------------------------

def update_shared(files: Files, shared: str, run_id: str, args, accuracy: float) -> int:
    if "AZUREML_NATIVE_SHARE_DIRECTORY" in os.environ:
        say("Workbench-style path: " + os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"] + "run_count.txt")

    text = files.read(shared + "run_count.txt")
    try:
        previous = int(text.strip()) if text else 0
    except ValueError:
        say(f"run_count.txt held {text.strip()!r}, not a number: starting again from 0")
        previous = 0
    runs = previous + 1
    files.write(shared + "run_count.txt", f"{runs}\n")
    say(f"runs so far: {runs}")

    history = files.read(shared + "history.csv") or HISTORY_HEADER
    earlier = list(csv.DictReader(io.StringIO(history)))
    if earlier:
        best = max(earlier, key=lambda row: float(row["test_accuracy"]))
        say(f"history: {len(earlier)} earlier run(s); last accuracy {float(earlier[-1]['test_accuracy']):.3f}, "
            f"best {float(best['test_accuracy']):.3f} (alpha {best['alpha']})")
    else:
        say("history: this is the first run recorded")
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(
        [run_id, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), args.alpha, args.l1_ratio, f"{accuracy:.4f}"])
    files.write(shared + "history.csv", history + line.getvalue())
    return runs


# ---- main ---------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    args = parse_args(argv)  # bad arguments exit with status 2 before Spark starts
    run_id = (context.run_id() if context is not None else None) or os.environ.get("SPARKJOBS_RUN_ID") \
        or "manual-" + datetime.now().strftime("%Y%m%d-%H%M%S")
    outputs = outputs_folder()
    files_folder = local_outputs_folder(outputs)
    shared = shared_folder()
    say(f"run {run_id}: alpha={args.alpha} l1_ratio={args.l1_ratio} test_fraction={args.test_fraction} seed={args.seed}")
    say(f"outputs: {outputs}")
    say(f"shared:  {shared}")

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("iris-train").getOrCreate()
    say(f"Spark {spark.version} up, master {spark.sparkContext.master}")
    try:
        from pyspark.sql import functions as F

        # One seeded coin per row picks the test set; Spark ML trains on the rest.
        df = load_iris(spark, args.data).withColumn("is_test", F.rand(args.seed) < args.test_fraction).cache()
        total = df.count()
        say(f"read {total} rows from {args.data}")
        train_df = df.filter(~F.col("is_test"))

        model = train(train_df, args)
        classes = list(model.stages[0].labels)
        lr = model.stages[-1]
        say(f"trained in {lr.summary.totalIterations} iterations")

        # 150 predictions: score every row once and count on the driver.
        scored = model.transform(df).select("is_test", "label", "prediction").collect()
        tested = [row for row in scored if row["is_test"]]
        trained = [row for row in scored if not row["is_test"]]
        train_rows, test_rows = len(trained), len(tested)
        if not train_rows or not test_rows:
            raise SystemExit(f"train.py: the split left {train_rows} training and {test_rows} test rows")
        accuracy = sum(row["label"] == row["prediction"] for row in tested) / test_rows
        train_accuracy = sum(row["label"] == row["prediction"] for row in trained) / train_rows
        matrix = confusion_matrix(tested, len(classes))
        say(f"split: {train_rows} training rows, {test_rows} test rows")
        say(f"accuracy: test {accuracy:.3f}, training {train_accuracy:.3f}")
        for name, row in zip(classes, matrix):
            say(f"  {name:<16} predicted as {dict(zip(classes, row))}")

        model.write().overwrite().save(outputs + "model")
        say(f"saved Spark ML model to {outputs}model")

        coefficients = lr.coefficientMatrix.toArray().tolist()
        intercepts = lr.interceptVector.toArray().tolist()
        with open(files_folder + "model.pkl", "wb") as handle:
            pickle.dump({"classes": classes, "features": FEATURES, "coefficients": coefficients,
                         "intercepts": intercepts, "alpha": args.alpha, "l1_ratio": args.l1_ratio}, handle)

        metrics = {
            "run_id": run_id,
            "accuracy": accuracy,
            "train_accuracy": train_accuracy,
            "alpha": args.alpha,
            "l1_ratio": args.l1_ratio,
            "test_fraction": args.test_fraction,
            "seed": args.seed,
            "rows": {"total": total, "train": train_rows, "test": test_rows},
            "iterations": lr.summary.totalIterations,
            "classes": classes,
            "confusion_matrix": matrix,
            "spark_version": spark.version,
        }
        pngs = plot(files_folder, matrix, classes, coefficients,
                    f"alpha={args.alpha:g}, l1_ratio={args.l1_ratio:g}, accuracy {accuracy:.3f}")
        metrics["plots"] = pngs
        metrics["seconds"] = round(time.time() - STARTED, 2)
        with open(files_folder + "metrics.json", "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=2)
        say(f"wrote model.pkl, metrics.json{''.join(', ' + name for name in pngs)} to {files_folder}")

        update_shared(Files(spark), shared, run_id, args, accuracy)
    finally:
        spark.stop()
    say(f"done: accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
