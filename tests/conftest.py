"""Shared fixtures. Each real component has its own plugin module under tests/plugins/."""
import os

import pytest
from xdist.scheduler import LoadFileScheduling

from jvm_archive import jvm_options

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
if os.environ.get("SPARKJOBS_CPU_REPORT"):  # where the suite's CPU goes, per module (opt-in)
    pytest_plugins.append("plugins.cpu_report")

# Every spark-submit the tests start loads Spark's classes from one archive (tests/jvm_archive.py):
# the suite is CPU-bound, and most of its CPU is JVMs starting.
_JVM = jvm_options()
if _JVM and _JVM not in os.environ.get("SPARK_SUBMIT_OPTS", ""):
    os.environ["SPARK_SUBMIT_OPTS"] = " ".join(filter(None, (os.environ.get("SPARK_SUBMIT_OPTS"), _JVM)))

#: The modules whose tests use the HDInsight box (YARN and Livy), which starts once per xdist
#: worker: one worker takes them all, so it starts once, not on every worker while the others'
#: jobs compete for the 2 cores. Collection checks that the list is complete.
ON_THE_BOX = frozenset({"test_hdinsight.py", "test_hdinsight_faults.py", "test_hdi_livy.py", "test_spark_packages.py",
                        "test_env_shipping_yarn.py"})
BOX_FIXTURES = {"hdinsight", "hdi_cluster"}


BOX_UNIT = "hdinsight-box"
#: Modules that take minutes (Spark and YARN runs), longest first after the box: started first, they
#: end with the rest instead of running alone at the end. The rest follow by number of tests.
LONGEST_FIRST = ("test_docs_commands.py", "test_cluster_target.py", "test_wasb_driver.py", "test_lifecycle.py",
                 "test_env_shipping.py", "test_metrics.py", "test_reuse.py", "test_spark_target.py",
                 "test_workbench_runs.py", "test_example.py", "test_local_runs.py", "test_environments.py")


class _OneBoxScheduling(LoadFileScheduling):
    """--dist loadfile, with the modules on the box as one unit, which starts first: it is the
    longest. (--dist loadgroup would say it with markers, but pytest-xdist 3.8 cannot name the
    groups on pytest 9's test ids.)"""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return BOX_UNIT if module.rsplit("/", 1)[-1] in ON_THE_BOX else module

    def _assign_work_unit(self, node) -> None:  # noqa: ANN001 - xdist's WorkerController
        if not getattr(self, "_ordered", False):  # the first call: the queue is complete
            self._ordered = True
            for name in reversed((BOX_UNIT, *LONGEST_FIRST)):
                for scope in [s for s in self.workqueue if s == name or s.endswith("/" + name)]:
                    self.workqueue.move_to_end(scope, last=False)
        super()._assign_work_unit(node)


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 - xdist's hook
    if config.getvalue("dist") == "loadfile":
        return _OneBoxScheduling(config, log)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = sorted({item.path.name for item in items if BOX_FIXTURES & set(getattr(item, "fixturenames", ()))}
                     - ON_THE_BOX)
    if missing:
        raise pytest.UsageError(f"tests/conftest.py: add {', '.join(missing)} to ON_THE_BOX (they use the HDInsight box).")
