"""The cluster's own storage, asked of Ambari, for a cluster compute without ``storage``.

An HDInsight cluster always has a default storage, the container it was created with, and
the cluster can always read it: its address is ``fs.defaultFS`` in the HDFS service's
``core-site`` (``wasbs://CONTAINER@ACCOUNT.blob.core.windows.net`` or
``abfs://CONTAINER@ACCOUNT.dfs.core.windows.net``). Ambari's REST API serves that
configuration behind the same gateway and login as Livy::

    GET https://CLUSTER.azurehdinsight.net/api/v1/clusters
        -> items[].Clusters.cluster_name         (the name's exact case: Ambari is case sensitive)
    GET .../api/v1/clusters/NAME/configurations/service_config_versions?service_name=HDFS&is_current=true
        -> items[].configurations[] whose type is core-site -> properties["fs.defaultFS"]

sparkjobs keeps its files in that container under ``sparkjobs/``, and remembers the answer
per cluster in ``$SPARKJOBS_HOME/cache/cluster-storage/`` so that later runs ask nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..errors import ConfigError, TargetError
from ..storage.uris import parse_location
from ..textsafe import terminal_safe

__all__ = ["ClusterStorage", "PREFIX", "ambari_url", "default_storage", "pick_cluster"]

PREFIX = "sparkjobs"
TIMEOUT = (10.0, 30.0)  # (connect, read) seconds for each Ambari call


@dataclass(frozen=True)
class ClusterStorage:
    """What Ambari said of one cluster's default storage, and what sparkjobs makes of it."""

    ambari: str  # the Ambari API asked, e.g. https://mycluster.azurehdinsight.net/api/v1
    cluster: str  # the cluster's name in Ambari
    default_fs: str  # fs.defaultFS in core-site
    storage: str  # where sparkjobs keeps its files: the default container, under sparkjobs/
    asked_at: str  # when Ambari was asked (UTC, ISO 8601)
    cache_file: str  # where the answer is kept


def ambari_url(livy_url: str) -> str:
    """Ambari's API behind the gateway that serves Livy: same scheme, host and port."""
    parts = urlsplit(livy_url)
    return f"{parts.scheme}://{parts.netloc}/api/v1"


def default_storage(
    livy_url: str,
    *,
    auth: tuple[str, str] | None,
    verify: bool | str,
    cache_dir: Path,
    compute_file: str,
) -> tuple[ClusterStorage, bool]:
    """The cluster's default storage and whether Ambari was asked now (False: from the cache).

    ``compute_file`` names the .compute file for messages. Raises TargetError (the cluster
    could not be asked) or ConfigError (its answer cannot be used), both saying to set
    ``storage`` instead.
    """
    api = ambari_url(livy_url)
    cache = cache_dir / f"{hashlib.sha256(api.encode()).hexdigest()[:16]}.json"
    known = _cached(cache, api)
    if known is not None:
        return known, False
    asker = _Ambari(api, auth, verify, compute_file)
    try:
        cluster = asker.cluster_name(urlsplit(livy_url).hostname or "")
        default_fs = asker.default_fs(cluster)
    finally:
        asker.close()
    storage = f"{default_fs.rstrip('/')}/{PREFIX}"
    try:
        parse_location(storage)
    except ConfigError as exc:
        raise ConfigError(
            f"The cluster's default storage is {terminal_safe(default_fs)} (fs.defaultFS in its core-site, from "
            f"Ambari), which sparkjobs cannot use ({exc}): set 'storage' in {compute_file} to a wasbs:// or "
            "abfss:// location the cluster can read."
        ) from None
    answer = ClusterStorage(api, cluster, default_fs, storage, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), str(cache))
    _remember(cache, answer)
    return answer, True


def pick_cluster(names: list[str], host: str) -> str | None:
    """This cluster's name as Ambari spells it: on HDInsight the host's first label in any
    case (``MyCluster`` for ``mycluster.azurehdinsight.net``), elsewhere the only cluster."""
    if host.lower().endswith(".azurehdinsight.net"):
        wanted = host.split(".", 1)[0].lower()
        names = [n for n in names if n.lower() == wanted]
    return names[0] if len(names) == 1 else None


def _cached(path: Path, api: str) -> ClusterStorage | None:
    try:
        data = json.loads(path.read_text())
        answer = ClusterStorage(**{**data, "cache_file": str(path)})
    except (OSError, ValueError, TypeError):
        return None  # none yet, or unreadable: ask again
    return answer if answer.ambari == api else None


def _remember(path: Path, answer: ClusterStorage) -> None:
    """Write the answer atomically; a cache that cannot be written only costs a later ask."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            json.dump({k: v for k, v in asdict(answer).items() if k != "cache_file"}, handle, indent=2)
        os.replace(tmp, path)
    except OSError:
        pass


class _Ambari:
    """The two Ambari calls, with the cluster login; every failure is one clear sentence."""

    def __init__(self, api: str, auth: tuple[str, str] | None, verify: bool | str, compute_file: str) -> None:
        self.api, self.auth, self.verify, self.compute_file = api, auth, verify, compute_file
        self.session = requests.Session()
        retry = Retry(total=3, connect=3, read=0, status=3, backoff_factor=0.5,
                      status_forcelist=(502, 503, 504), allowed_methods=("GET",), raise_on_status=False)
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.mount("http://", HTTPAdapter(max_retries=retry))

    def close(self) -> None:
        self.session.close()

    def cluster_name(self, host: str) -> str:
        names = [
            item.get("Clusters", {}).get("cluster_name")
            for item in self._get("/clusters").get("items", [])
            if isinstance(item, dict) and isinstance(item.get("Clusters"), dict)
        ]
        names = [n for n in names if isinstance(n, str) and n]
        chosen = pick_cluster(names, host)
        if chosen is None:
            listed = ", ".join(names) or "none"
            raise TargetError(self._fail(f"Ambari at {self.api} lists {len(names)} cluster(s) ({terminal_safe(listed)}), not one that is this cluster"))
        return chosen

    def default_fs(self, cluster: str) -> str:
        path = f"/clusters/{quote(cluster)}/configurations/service_config_versions"
        body = self._get(path, {"service_name": "HDFS", "is_current": "true"})
        for item in body.get("items", []) if isinstance(body.get("items"), list) else []:
            for config in item.get("configurations", []) if isinstance(item, dict) else []:
                if isinstance(config, dict) and config.get("type") == "core-site":
                    value = (config.get("properties") or {}).get("fs.defaultFS")
                    if isinstance(value, str) and value.strip():
                        return value.strip()
        raise TargetError(self._fail(f"Ambari's current HDFS configuration of cluster {terminal_safe(cluster)} has no fs.defaultFS in core-site"))

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict:
        url = self.api + path
        try:
            response = self.session.get(url, params=params, auth=self.auth, verify=self.verify, timeout=TIMEOUT,
                                        headers={"Accept": "application/json"})
        except requests.exceptions.SSLError as exc:
            raise TargetError(self._fail(f"TLS failed for {url} ({_brief(exc)}); if the gateway uses a private CA, "
                                         f"give its bundle as 'verify' in {self.compute_file}")) from None
        except requests.exceptions.RequestException as exc:
            raise TargetError(self._fail(f"could not reach Ambari at {url} ({_brief(exc)})")) from None
        if response.status_code == 401:
            who = f"the login '{self.auth[0]}'" if self.auth else "a request without a login"
            raise TargetError(self._fail(f"Ambari at {self.api} refused {who} (HTTP 401); check 'username' and the password"))
        if response.status_code != 200:
            raise TargetError(self._fail(f"Ambari answered HTTP {response.status_code} for {url}{_reason(response)}"))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TargetError(self._fail(f"Ambari's answer for {url} is not a JSON object"))
        return body

    def _fail(self, what: str) -> str:
        return (f"'storage' is not set in {self.compute_file}, and sparkjobs could not learn the cluster's default "
                f"storage: {what}. Set 'storage' there, or fix this.")


def _reason(response: requests.Response) -> str:
    """Ambari's ``message``, or an HTML page's title, shortened; empty if neither."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        found = re.search(r"<title>(.*?)</title>", response.text or "", re.S | re.I)
        message = found.group(1) if found else None
    return f": {terminal_safe(' '.join(str(message).split()))[:200]}" if message else ""


def _brief(exc: Exception) -> str:
    return terminal_safe(" ".join(str(exc).split()))[:200]
