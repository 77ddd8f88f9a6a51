"""Where the suite's CPU goes, per test module: ``SPARKJOBS_CPU_REPORT=DIR bash tests/run`` (opt-in).

The suite is CPU-bound on 2 cores, so its wall time is its CPU time over two; cutting it means
knowing which modules burn the CPU. Each worker adds up, per module, its own CPU and that of the
processes it started and waited for (the CLI, spark-submit and the JVMs under them), and writes
``cpu-report-<worker>.json`` into the folder ``$SPARKJOBS_CPU_REPORT`` names.
Servers started by session fixtures (Spark, YARN, Livy, Azurite) count when they are stopped and
waited for, under the module whose teardown stops them.
"""
from __future__ import annotations

import json
import os
import resource
from collections import defaultdict
from pathlib import Path

import pytest

_TOTALS: dict[str, float] = defaultdict(float)


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = _cpu()
    yield
    _TOTALS[item.nodeid.split("::", 1)[0]] += _cpu() - before


def pytest_sessionfinish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    folder = Path(os.environ["SPARKJOBS_CPU_REPORT"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"cpu-report-{worker}.json").write_text(json.dumps({"total": _cpu(), "modules": _TOTALS}, indent=1))
