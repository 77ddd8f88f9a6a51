"""A built Python environment for the shipping tests, and a way to give it to a run.

Until the build side of issue 12 (declaring, resolving, storing) is merged, these tests build
the environment themselves, exactly as the contract in ``sparkjobs.environments`` describes it:
``pip install --target`` of pinned wheels for manylinux2014_x86_64 and this Python, packed as a
.tar.gz whose root is the import root. ``msgpack`` has native code and ``tabulate`` is pure
Python; the test process has neither (so an import can only succeed through the shipped
environment). The run is given it through the one seam where the service builds a run's
``SubmitPlan`` (``run_flow.prepare``), so everything after it is the real service and target.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

from sparkjobs import run_flow
from sparkjobs.environments import DEFAULT_PLATFORM, BuiltEnvironment, ResolvedPackage
from sparkjobs.environments.store import manifest_of
from sparkjobs.storage.base import sha256_file
from sparkjobs.service import RunObserver, RunRequest, SparkJobs

__all__ = ["PINS", "JOB", "build_environment", "give_environment", "run_in_process", "job_result"]

PINS = ("msgpack==1.0.8", "tabulate==0.9.0")
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

#: A UDF that imports both packages on the executors (and reports where they came from, and
#: that msgpack's C extension loaded); the driver imports them too.
JOB = """
import json, os
from pyspark.sql import SparkSession
from pyspark.sql.functions import udf
from pyspark.sql.types import StringType

@udf(StringType())
def where(n):
    import msgpack, tabulate
    return json.dumps({"msgpack": msgpack.__file__, "packer": msgpack.Packer.__module__,
                       "tabulate": tabulate.__file__, "roundtrip": msgpack.unpackb(msgpack.packb([n, "x"])),
                       "table": tabulate.tabulate([[n, "x"]], tablefmt="plain"), "pid": os.getpid()})

spark = SparkSession.builder.getOrCreate()
executors = [json.loads(row[0]) for row in spark.range(3).repartition(2).select(where("id")).collect()]
import msgpack, tabulate
result = {"executors": executors, "driver": {"msgpack": msgpack.__file__, "tabulate": tabulate.__file__,
          "pid": os.getpid(), "version": list(msgpack.version)}}
print("RESULT " + json.dumps(result))
spark.stop()
"""


def build_environment(folder: Path, *, python: str = PYTHON, claimed: str | None = None) -> BuiltEnvironment:
    """Install PINS for ``python`` into ``folder/unpacked`` and pack them; ``claimed`` is the
    Python version the environment says it was built for (to test a mismatch)."""
    unpacked = folder / "unpacked"
    if not (unpacked / "msgpack").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", "--platform", DEFAULT_PLATFORM, "--python-version", python,
             "--target", str(unpacked), *PINS],
            check=True, capture_output=True, text=True, timeout=300,
        )
    archive = folder / "environment.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(unpacked.rglob("*")):
            tar.add(path, arcname=path.relative_to(unpacked).as_posix(), recursive=False)
    # As the build side's digest, it covers the Python the wheels are for (here: the one claimed).
    digest = hashlib.sha256(archive.read_bytes() + (claimed or python).encode()).hexdigest()
    packages = tuple(ResolvedPackage(pin.split("==")[0], pin.split("==")[1], "") for pin in PINS)
    built = BuiltEnvironment(digest, claimed or python, DEFAULT_PLATFORM, packages, archive, unpacked, "requirements.txt")
    # The manifest the build side keeps beside its archive, which storing the environment reads.
    (folder / "manifest.json").write_text(json.dumps(manifest_of(built, sha256_file(archive))))
    return built


def give_environment(monkeypatch, environment: BuiltEnvironment) -> None:
    """Every run the service prepares in this test gets ``environment`` (see the module docstring)."""
    prepare = run_flow.prepare

    def with_environment(*args, **kwargs):
        repo, plan, target = prepare(*args, **kwargs)
        return repo, replace(plan, environment=environment), target

    monkeypatch.setattr(run_flow, "prepare", with_environment)


def run_in_process(project: Path, config: str, script: str, environ: dict[str, str]):
    """Run through the real service, as the CLI does; returns the record and the job's lines."""
    lines: list[str] = []
    record = SparkJobs(environ).run(RunRequest(project, config, script), RunObserver(on_line=lines.append))
    return record, lines


def job_result(lines: list[str]) -> dict:
    found = [line[len("RESULT "):] for line in lines if line.startswith("RESULT ")]
    assert found, "\n".join(lines[-60:])
    return json.loads(found[-1])
