"""Telling, from Livy's log, that the cluster could not read the run's storage.

On a cluster target Livy's ``file`` (the bootstrap) and ``pyFiles`` (the runtime zip) are
storage URIs that spark-submit fetches before any sparkjobs code runs. If the cluster has
no access to that storage (no key or SAS for the account in its core-site, a container it
may not read, no driver for the scheme), the batch dies with nothing but a Java exception
in Livy's log, and the bootstrap never writes an exit code or a driver log. This module
finds that line and says what to do about it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..storage.uris import StorageLocation
from ..textsafe import terminal_safe

__all__ = ["StorageAccess"]

#: What Hadoop and its Azure drivers say when a file cannot be read: missing, refused, or
#: a scheme with no driver.
_FAILURE = re.compile(
    r"FileNotFoundException|does not exist|AccessDeniedException|AccessControlException|Permission denied"
    r"|AzureException|StorageException|AbfsRestOperationException|AuthorizationPermissionMismatch"
    r"|AuthorizationFailure|AuthenticationFailed|not accessible using anonymous credentials"
    r"|No FileSystem for scheme|\b40[34]\b"
)
#: Errors only Azure storage raises: they name no URI, and a batch reads no other Azure
#: storage before the bootstrap runs.
_AZURE_ONLY = re.compile(r"AzureException|AbfsRestOperationException|com\.microsoft\.azure\.storage")


@dataclass(frozen=True)
class StorageAccess:
    """The run's storage as log lines name it, and what to advise when the cluster cannot read it."""

    storage: str  # the storage's URI, as shown to the user
    marks: tuple[str, ...]  # texts that name it in a log line
    azure: bool
    advice: str  # what to do, a clause: "check ..., or ..."

    @classmethod
    def of(cls, where: StorageLocation, advice: str) -> StorageAccess:
        if where.is_local:
            marks: tuple[str, ...] = (where.prefix,)
        else:
            kind = "dfs" if where.scheme.startswith("abfs") else "blob"
            marks = (f"{where.container}@{where.account}.", f"{where.account}.{kind}.", f"container {where.container}")
        return cls(where.uri("", folder=False), marks, not where.is_local, advice)

    def failure_line(self, lines: Iterable[str]) -> str | None:
        """The first log line saying that the storage could not be read, if any."""
        for line in lines:
            if not _FAILURE.search(line):
                continue
            if any(mark in line for mark in self.marks) or (self.azure and _AZURE_ONLY.search(line)):
                return line.strip()
        return None

    def explain(self, lines: Iterable[str], bootstrap_started: bool, log_uri: str) -> str | None:
        """A sentence on why the batch died before the bootstrap could record anything, or
        None when nothing points at storage."""
        line = self.failure_line(lines)
        if line is not None:
            shown = terminal_safe(" ".join(line.split()))[:300]
            return f"The cluster could not read the run's files in {self.storage} (Livy's log: {shown}): {self.advice}."
        if bootstrap_started:
            return None
        return (
            f"Nothing shows that sparkjobs' bootstrap started on the cluster (no driver log at {log_uri}); "
            f"if the cluster cannot read {self.storage}, {self.advice}."
        )
