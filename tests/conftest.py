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
