"""Ambari's REST API as the gateway serves it under ``/api/v1``: SIMULATED.

There is no Ambari here. These are the two calls sparkjobs makes, answered in Ambari's
documented response shapes (payloads/README.md): the cluster list, whose name has the
cluster's exact case, and the current HDFS service configuration, whose ``core-site`` holds
``fs.defaultFS``, the cluster's default storage. Anything else is Ambari's JSON 404.
"""
from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

__all__ = ["AmbariSim", "AmbariAnswer"]

PAYLOADS = Path(__file__).parent / "payloads"
CLUSTERS = json.loads((PAYLOADS / "ambari_clusters.json").read_text())
HDFS_CONFIG = json.loads((PAYLOADS / "ambari_hdfs_config.json").read_text())


@dataclass(frozen=True)
class AmbariAnswer:
    status: int
    body: Any


class AmbariSim:
    """What the simulated Ambari answers; tests change ``default_fs`` or inject an error."""

    def __init__(self, cluster: str = "SparkJobsTest", default_fs: str | None = None) -> None:
        self.cluster = cluster  # mixed case on purpose: Ambari's names are case sensitive
        self.default_fs = default_fs
        self._errors: list[AmbariAnswer] = []
        self._lock = threading.Lock()

    def error_next(self, status: int, message: str, count: int = 1) -> None:
        """Answer the next ``count`` Ambari calls with Ambari's JSON error shape."""
        with self._lock:
            self._errors.extend([AmbariAnswer(status, {"status": status, "message": message})] * count)

    def answer(self, method: str, path: str, query: dict[str, str], origin: str) -> AmbariAnswer:
        with self._lock:
            if self._errors:
                return self._errors.pop(0)
        parts = [unquote(p) for p in path.strip("/").split("/")]  # after /api/v1
        if method == "GET" and parts == ["clusters"]:
            return AmbariAnswer(200, self._fill(CLUSTERS, origin))
        if (
            method == "GET"
            and len(parts) == 4
            and parts[0] == "clusters"
            and parts[1] == self.cluster
            and parts[2:] == ["configurations", "service_config_versions"]
            and query.get("service_name") == "HDFS"
        ):
            return AmbariAnswer(200, self._hdfs(origin))
        return AmbariAnswer(404, {"status": 404, "message": f"The requested resource doesn't exist: {path}"})

    def _hdfs(self, origin: str) -> dict[str, Any]:
        body = self._fill(HDFS_CONFIG, origin)
        for config in body["items"][0]["configurations"]:
            if config["type"] == "core-site":
                props = config["properties"]
                if self.default_fs is None:
                    del props["fs.defaultFS"]
                else:
                    props["fs.defaultFS"] = self.default_fs
                account = _account(self.default_fs)
                for key in [k for k in props if "ACCOUNT" in k]:
                    props[key.replace("ACCOUNT", account)] = props.pop(key)
        return body

    def _fill(self, payload: dict[str, Any], origin: str) -> dict[str, Any]:
        text = json.dumps(copy.deepcopy(payload))
        text = text.replace("https://CLUSTER.azurehdinsight.net", origin).replace("CLUSTER", self.cluster)
        return json.loads(text)


def _account(default_fs: str | None) -> str:
    """The storage account of a ``wasbs://container@account.blob...`` URI, for core-site's keys."""
    if not default_fs or "@" not in default_fs:
        return "account"
    return default_fs.split("@", 1)[1].split(".", 1)[0]
