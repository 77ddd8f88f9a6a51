"""Lines of a job's output that tell the user nothing, dropped before the terminal and the log.

Only exact, known lines: anything a script prints itself reaches the user unchanged.
"""
from __future__ import annotations

__all__ = ["is_noise"]

#: Spark 4's launcher starts every driver JVM with ``--add-modules=jdk.incubator.vector`` (for
#: its vectorised BLAS), and the JVM then prints this on every run. It comes from the JVM's
#: module bootstrap, which no JVM option or Spark setting silences, and spark-submit gives no way
#: to leave the module out; so it is filtered here, the one place all job output passes.
_JVM_NOISE = frozenset({"WARNING: Using incubator modules: jdk.incubator.vector"})


def is_noise(line: str) -> bool:
    return line in _JVM_NOISE
