"""Typed, immutable views of what Livy sends and accepts.

Parsing is lenient where Livy versions differ (older servers omit fields, newer ones add
some) and strict where a client cannot go on without a value (``id``, ``state``): those
raise :class:`~livy.errors.LivyProtocolError`, never ``KeyError``.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

from livy.errors import LivyProtocolError

__all__ = [
    "BatchState",
    "AppInfo",
    "Batch",
    "BatchStatus",
    "LogPage",
    "BatchList",
    "Version",
    "BatchRequest",
    "SECRET_CONF_KEY",
    "unique_name",
]

#: Conf keys whose values never appear in logs or reprs.  Spark's default
#: ``spark.redaction.regex`` misses the Azure storage keys, so they are added here.
SECRET_CONF_KEY = re.compile(
    r"(?i)secret|password|token|access[.]?key|credential|fs\.azure\.(account\.key|sas)"
)
STREAM_HEADERS = {"stdout: ": "stdout", "\nstderr: ": "stderr", "\nYARN Diagnostics: ": "yarn"}


class BatchState(str, enum.Enum):
    """Every state Livy's SessionState knows, plus UNKNOWN for strings it may add later.

    ``BatchState.TERMINAL`` holds the states a batch never leaves, ``BatchState.PENDING``
    those of a batch that has not started running yet.  UNKNOWN is neither: a client that
    meets a new state keeps polling rather than giving up on a live job.
    """

    NOT_STARTED = "not_started"
    STARTING = "starting"
    RECOVERING = "recovering"
    IDLE = "idle"
    RUNNING = "running"
    BUSY = "busy"
    SHUTTING_DOWN = "shutting_down"
    ERROR = "error"
    DEAD = "dead"
    KILLED = "killed"
    SUCCESS = "success"
    UNKNOWN = "unknown"

    TERMINAL: ClassVar[frozenset[BatchState]]
    PENDING: ClassVar[frozenset[BatchState]]

    @classmethod
    def _missing_(cls, value: object) -> BatchState:
        return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        return self in BatchState.TERMINAL


BatchState.TERMINAL = frozenset(
    {BatchState.SUCCESS, BatchState.DEAD, BatchState.KILLED, BatchState.ERROR}
)
BatchState.PENDING = frozenset({BatchState.NOT_STARTED, BatchState.STARTING})


def _require(obj: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LivyProtocolError(f"Livy sent a {what} without a valid {key!r}: {obj!r:.300}")
    return value


def _optional(obj: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = obj.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise LivyProtocolError(f"Livy sent a {what} whose {key!r} is not a {kind.__name__}")
    return value


def _mapping(body: object, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise LivyProtocolError(f"expected a JSON object for a {what}, got {body!r:.200}")
    return body


def _strings(obj: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LivyProtocolError(f"Livy sent a {what} whose {key!r} is not a list of strings")
    return tuple(value)


def _state(obj: Mapping[str, Any], what: str) -> tuple[BatchState, str]:
    raw = _require(obj, "state", str, what)
    return BatchState(raw), raw


@dataclass(frozen=True)
class AppInfo:
    """Links Livy learns from YARN; both are null until the application is known."""

    driver_log_url: str | None = None
    spark_ui_url: str | None = None

    @classmethod
    def from_json(cls, body: object) -> AppInfo:
        if body is None:
            return cls()
        obj = _mapping(body, "appInfo")
        return cls(
            driver_log_url=_optional(obj, "driverLogUrl", str, "appInfo"),
            spark_ui_url=_optional(obj, "sparkUiUrl", str, "appInfo"),
        )


@dataclass(frozen=True)
class Batch:
    """One batch as Livy describes it.  ``log`` is only the last 10 lines of the log view.

    ``state_raw`` keeps the server's own string, which matters when ``state`` is UNKNOWN.
    """

    id: int
    state: BatchState
    state_raw: str
    name: str | None = None
    owner: str | None = None
    proxy_user: str | None = None
    app_id: str | None = None
    app_info: AppInfo = field(default_factory=AppInfo)
    log: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, body: object) -> Batch:
        obj = _mapping(body, "batch")
        state, raw = _state(obj, "batch")
        return cls(
            id=_require(obj, "id", int, "batch"),
            state=state,
            state_raw=raw,
            name=_optional(obj, "name", str, "batch"),
            owner=_optional(obj, "owner", str, "batch"),
            proxy_user=_optional(obj, "proxyUser", str, "batch"),
            app_id=_optional(obj, "appId", str, "batch"),
            app_info=AppInfo.from_json(obj.get("appInfo")),
            log=_strings(obj, "log", "batch"),
        )


@dataclass(frozen=True)
class BatchStatus:
    """The answer of the cheap ``GET /batches/{id}/state``."""

    id: int
    state: BatchState
    state_raw: str

    @classmethod
    def from_json(cls, body: object) -> BatchStatus:
        obj = _mapping(body, "batch state")
        state, raw = _state(obj, "batch state")
        return cls(id=_require(obj, "id", int, "batch state"), state=state, state_raw=raw)


@dataclass(frozen=True)
class LogPage:
    """A slice of Livy's log *view*: ``offset`` and ``total`` index that view, not the output.

    The view is ``["stdout: ", ..., "\\nstderr: ", ..., "\\nYARN Diagnostics: ", ...]`` and
    keeps only the last 200 lines per stream, so offsets slide once output passes that.
    """

    id: int
    offset: int
    total: int
    lines: tuple[str, ...]

    @classmethod
    def from_json(cls, body: object) -> LogPage:
        obj = _mapping(body, "log page")
        return cls(
            id=_require(obj, "id", int, "log page"),
            offset=_require(obj, "from", int, "log page"),
            total=_require(obj, "total", int, "log page"),
            lines=_strings(obj, "log", "log page"),
        )

    def streams(self) -> dict[str, tuple[str, ...]]:
        """Split a whole view into its streams; a view without headers is one ``log`` stream."""
        found: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in self.lines:
            if line in STREAM_HEADERS and STREAM_HEADERS[line] not in found:
                current = found.setdefault(STREAM_HEADERS[line], [])
            elif current is None:
                current = found.setdefault("log", [])
                current.append(line)
            else:
                current.append(line)
        return {name: tuple(lines) for name, lines in found.items()}


@dataclass(frozen=True)
class BatchList:
    """One page of ``GET /batches``; ``total`` counts every batch Livy retains."""

    offset: int
    total: int
    batches: tuple[Batch, ...]

    @classmethod
    def from_json(cls, body: object) -> BatchList:
        obj = _mapping(body, "batch list")
        sessions = obj.get("sessions")
        if not isinstance(sessions, list):
            raise LivyProtocolError("Livy sent a batch list without a 'sessions' list")
        return cls(
            offset=_require(obj, "from", int, "batch list"),
            total=_require(obj, "total", int, "batch list"),
            batches=tuple(Batch.from_json(item) for item in sessions),
        )


@dataclass(frozen=True)
class Version:
    """``GET /version`` (Livy 0.3 and later); every field may be missing."""

    version: str | None = None
    user: str | None = None
    revision: str | None = None
    branch: str | None = None
    date: str | None = None
    url: str | None = None

    @classmethod
    def from_json(cls, body: object) -> Version:
        obj = _mapping(body, "version")
        return cls(**{f.name: _optional(obj, f.name, str, "version") for f in fields(cls)})


def unique_name(prefix: str) -> str:
    """A batch name unlikely to collide, for requests that must be safe to resubmit."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _conf_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError(f"conf value for {key!r} must be a string, number or bool")


def _json(name: str) -> Any:
    return field(default=None, metadata={"json": name})


def _json_list(name: str) -> Any:
    return field(default=(), metadata={"json": name})


@dataclass(frozen=True, repr=False)
class BatchRequest:
    """Everything ``POST /batches`` accepts, described once.

    ``to_json()`` emits Livy's own (camelCase) names and leaves out what is unset, because
    Livy rejects unknown fields.  ``name`` should be set: it is what lets the client find out,
    after a dropped connection, whether the batch was created (see ``LivyClient.create_batch``).
    """

    file: str = field(metadata={"json": "file"})
    name: str | None = _json("name")
    class_name: str | None = _json("className")
    args: tuple[str, ...] = _json_list("args")
    py_files: tuple[str, ...] = _json_list("pyFiles")
    jars: tuple[str, ...] = _json_list("jars")
    files: tuple[str, ...] = _json_list("files")
    archives: tuple[str, ...] = _json_list("archives")
    conf: Mapping[str, str] = field(default_factory=dict, metadata={"json": "conf"})
    proxy_user: str | None = _json("proxyUser")
    driver_memory: str | None = _json("driverMemory")
    driver_cores: int | None = _json("driverCores")
    executor_memory: str | None = _json("executorMemory")
    executor_cores: int | None = _json("executorCores")
    num_executors: int | None = _json("numExecutors")
    queue: str | None = _json("queue")

    def __post_init__(self) -> None:
        for name in ("args", "py_files", "jars", "files", "archives"):
            value: Iterable[str] = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"BatchRequest.{name} must be a list of strings, not a string")
            object.__setattr__(self, name, tuple(str(v) for v in value))
        conf = {str(k): _conf_value(str(k), v) for k, v in dict(self.conf).items()}
        object.__setattr__(self, "conf", MappingProxyType(conf))

    def to_json(self) -> dict[str, Any]:
        """The request body: Livy's field names, unset and empty values left out."""
        body: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (not isinstance(value, (int, str)) and len(value) == 0):
                continue
            body[f.metadata["json"]] = (
                list(value)
                if isinstance(value, tuple)
                else (dict(value) if isinstance(value, Mapping) else value)
            )
        return body

    def redacted(self) -> dict[str, Any]:
        """``to_json()`` with secret-looking conf values replaced by ``***``, for logs."""
        body = self.to_json()
        if "conf" in body:
            body["conf"] = {
                k: "***" if SECRET_CONF_KEY.search(k) else v for k, v in body["conf"].items()
            }
        return body

    def __repr__(self) -> str:
        return f"BatchRequest({self.redacted()!r})"
