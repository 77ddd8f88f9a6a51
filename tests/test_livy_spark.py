"""End to end through real spark-submit: the only Livy tests that run Spark itself.

Each Spark job costs several seconds on a 2-core machine, so there are two: one that
succeeds with a SparkSession, py-files, args and conf, and one whose driver fails.
"""

from __future__ import annotations

import pytest

from livy import BatchRequest, BatchState

pytestmark = pytest.mark.spark

JOB = """
import sys
from helper import double
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
print("app id", spark.sparkContext.applicationId)
print("conf", spark.conf.get("spark.livytest.flag"))
print("total", spark.range(int(sys.argv[1])).selectExpr("sum(id) as s").first()["s"] * double(1))
spark.stop()
"""


def test_spark_job_runs_through_livy(livy_server, livy_client_factory, tmp_path):
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    client = livy_client_factory(livy_server)
    request = BatchRequest(
        file=f"file://{tmp_path / 'job.py'}",
        py_files=[str(tmp_path / "helper.py")],
        args=["101"],
        name="spark-e2e",
        driver_memory="512m",
        conf={
            "spark.livytest.flag": "on",
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "1",
        },
    )
    handle = client.submit(request)
    lines: list[str] = []
    final = handle.wait(
        timeout=240, interval=0.5, on_log=lambda line: lines.append(f"{line.stream}: {line}")
    )
    assert final.state is BatchState.SUCCESS, "\n".join(lines[-40:])
    assert "stdout: total 10100" in lines and "stdout: conf on" in lines
    assert final.app_id is not None and f"stdout: app id {final.app_id}" in lines
    stdout = [line for line in lines if line.startswith("stdout: ")]
    assert len(stdout) == len(set(stdout))


def test_failing_driver_ends_dead(livy_server, livy_client_factory, tmp_path):
    (tmp_path / "fail.py").write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
    client = livy_client_factory(livy_server)
    handle = client.submit(BatchRequest(file=str(tmp_path / "fail.py"), name="spark-fails"))
    lines: list[str] = []
    final = handle.wait(timeout=120, interval=0.5, on_log=lambda line: lines.append(line.text))
    assert final.state is BatchState.DEAD and final.state in BatchState.TERMINAL
    assert "about to fail" in lines
