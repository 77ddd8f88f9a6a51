"""Shared fixtures. Each real component has its own plugin module under tests/plugins/."""
pytest_plugins = [
    "plugins.paths",
    "plugins.azurite",
    "plugins.azurite_tls",
    "plugins.livy_server",
    "plugins.gateway",
    "plugins.spark_cluster",
    "plugins.hdi_cluster",
    "plugins.hdinsight",  # after hdi_cluster: overrides its hdi_cluster_options
]

import os

from jvm_archive import jvm_options

# Every spark-submit the tests start loads Spark's classes from one archive (tests/jvm_archive.py):
# the suite is CPU-bound, and most of its CPU is JVMs starting.
_JVM = jvm_options()
if _JVM and _JVM not in os.environ.get("SPARK_SUBMIT_OPTS", ""):
    os.environ["SPARK_SUBMIT_OPTS"] = " ".join(filter(None, (os.environ.get("SPARK_SUBMIT_OPTS"), _JVM)))

import pytest

#: Fixtures that start the HDInsight box (YARN and Livy), once per xdist worker.
BOX_FIXTURES = {"hdinsight", "hdi_cluster"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every module whose tests use the box goes to one xdist worker, so the box starts once
    (not once per worker, each start competing with the others' jobs for the 2 cores); every
    other module is its own group, as with --dist loadfile."""
    on_the_box = {item.path for item in items if BOX_FIXTURES & set(getattr(item, "fixturenames", ()))}
    for item in items:
        item.add_marker(pytest.mark.xdist_group("hdinsight-box" if item.path in on_the_box else item.path.name))
