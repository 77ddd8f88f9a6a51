"""A small, typed client for Apache Livy's batch REST API (HDInsight included).

Layers: ``_transport`` (HTTP, auth, retries, error translation) → ``client.LivyClient``
(one method per endpoint, typed models) → ``batch.BatchHandle`` (wait, tail, kill).
Depends on ``requests`` only and knows nothing of the application using it.
"""

from __future__ import annotations

from livy._logtail import LogLine
from livy._schedule import FINISHING, Cadence
from livy._transport import BearerAuth, RetryPolicy, Transport
from livy.batch import BatchHandle
from livy.client import LivyClient
from livy.errors import (
    BatchForgotten,
    BatchMismatch,
    BatchNotFound,
    BatchStartTimeout,
    BatchTimeout,
    DuplicateBatchName,
    LivyError,
    LivyHTTPError,
    LivyProtocolError,
    LivyTransportError,
    SubmissionUnknown,
)
from livy.models import (
    AppInfo,
    Batch,
    BatchList,
    BatchRequest,
    BatchState,
    BatchStatus,
    LogPage,
    Version,
    unique_name,
)

__all__ = [
    "LivyClient",
    "BatchHandle",
    "Cadence",
    "FINISHING",
    "BatchRequest",
    "Batch",
    "BatchState",
    "BatchStatus",
    "AppInfo",
    "LogPage",
    "LogLine",
    "BatchList",
    "Version",
    "BearerAuth",
    "RetryPolicy",
    "Transport",
    "unique_name",
    "LivyError",
    "LivyTransportError",
    "LivyHTTPError",
    "BatchNotFound",
    "BatchForgotten",
    "DuplicateBatchName",
    "LivyProtocolError",
    "SubmissionUnknown",
    "BatchMismatch",
    "BatchTimeout",
    "BatchStartTimeout",
]
