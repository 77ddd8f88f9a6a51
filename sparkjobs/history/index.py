"""A local SQLite index of one run store's records: a cache, the store stays the source of truth.

One file per store, under sparkjobs' home (``cache/index/runs-<hash of the location>.sqlite``).
It holds each record's JSON, the columns runs are filtered and sorted by, and every metric and
param as (rank, number, text) so that sorting by one is an indexed join, not a read of every
record. A missing, corrupt or older-format file is rebuilt from the store (sync.py keeps it
current); nothing else depends on it.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ..runs import RunRecord, RunStatus
from .query import RunPage, RunQuery, SortField, ValueRank, classify

__all__ = ["IndexState", "Listed", "RunIndex", "index_path"]

# The record's fields are part of the format: a sparkjobs whose RunRecord gained a field rebuilds
# the index, rather than serve cached copies made without it.
SCHEMA = "2:" + ",".join(sorted(RunRecord.__dataclass_fields__))
_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY, stamp TEXT NOT NULL, settled INTEGER NOT NULL,
    project TEXT, target TEXT, script TEXT, status TEXT, started_at TEXT, ended_at TEXT,
    record TEXT, problem TEXT);
CREATE TABLE run_values (
    run_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    rank INTEGER NOT NULL, num REAL, text TEXT NOT NULL, project TEXT,
    PRIMARY KEY (run_id, kind, name)) WITHOUT ROWID;
CREATE INDEX runs_project ON runs (project, id);
CREATE INDEX runs_broken ON runs (id) WHERE problem IS NOT NULL;
CREATE INDEX runs_unended ON runs (id) WHERE settled = 0;
CREATE INDEX runs_choices ON runs (project, status, target, script) WHERE problem IS NULL;
CREATE INDEX value_names ON run_values (kind, name);
CREATE INDEX project_value_names ON run_values (project, kind, name);
"""
_LIVE = (RunStatus.RUNNING, RunStatus.LOST)
_DIRECTION = {False: "ASC", True: "DESC"}
_COLUMNS = {SortField.STATUS: "b.status", SortField.TARGET: "b.target", SortField.SCRIPT: "b.script",
            SortField.SNAPSHOT: "json_extract(b.record, '$.snapshot')"}  # rarely sorted by: no column of its own


@dataclass(frozen=True)
class Listed:
    """How the store's runs were listed: its listing stamp, taken before, and the folders without a record."""
    stamp: str | None
    recordless: frozenset[str]


@dataclass(frozen=True)
class IndexState:
    runs: dict[str, tuple[str, bool]]  # run id: (stamp, ended)
    last_full: float | None  # when every run id was last listed (and, locally, every record checked)
    listed: Listed  # how the store was last listed


def index_path(home: Path, location: str) -> Path:
    return home / "cache" / "index" / f"runs-{hashlib.sha256(location.encode()).hexdigest()[:20]}.sqlite"


class RunIndex:
    def __init__(self, path: Path, location: str) -> None:
        self.path = path
        self.location = location

    # ---- the file --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        """The index, made (again) when missing, unreadable, of another format or another store."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = _open(self.path)
            meta = dict(connection.execute("SELECT key, value FROM meta")) if _has_meta(connection) else {}
            if meta.get("schema") == SCHEMA and meta.get("location") == self.location:
                return connection
            connection.close()
        except sqlite3.DatabaseError:  # not a database, or cut short: it is only a cache
            pass
        self.reset()
        connection = _open(self.path)
        with connection:
            connection.executescript(_TABLES)
            connection.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", SCHEMA), ("location", self.location)])
        return connection

    def reset(self) -> None:
        """Forget everything: the next sync rebuilds the index from the store."""
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def known(self, *, unended_only: bool = False) -> IndexState:
        """What the index holds of the store (empty with no file): every run, or only those whose
        record may still change, with their stamps, and when and how the store was last listed."""
        if not self.path.exists():
            return IndexState({}, None, Listed(None, frozenset()))
        with closing(self._connect()) as connection:
            sql = "SELECT id, stamp, settled FROM runs" + (" WHERE settled = 0" if unended_only else "")
            rows = {i: (stamp, bool(settled)) for i, stamp, settled in connection.execute(sql)}
            meta = dict(connection.execute("SELECT key, value FROM meta WHERE key IN ('full_check', 'listing', 'recordless')"))
        full = meta.get("full_check")
        listed = Listed(meta.get("listing"), frozenset(json.loads(meta.get("recordless", "[]"))))
        return IndexState(rows, float(full) if full else None, listed)

    def update(self, loaded: Iterable[tuple[str, str, RunRecord | str]], gone: Iterable[str], full_check: float | None,
               listed: Listed | None = None) -> None:
        """Store each (id, stamp, record or why it cannot be read), forget ``gone``, and note when the
        store was checked whole and how it was listed, in one transaction."""
        with closing(self._connect()) as connection, connection:
            connection.execute("BEGIN IMMEDIATE")  # two sparkjobs processes syncing take turns
            for run_id in gone:
                connection.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                connection.execute("DELETE FROM run_values WHERE run_id = ?", (run_id,))
            for run_id, stamp, record in loaded:
                connection.execute("DELETE FROM run_values WHERE run_id = ?", (run_id,))
                if isinstance(record, str):
                    row = (run_id, stamp, 0, None, None, None, None, None, None, None, record)
                else:
                    row = (run_id, stamp, int(record.status.is_terminal), record.project, record.target, record.script,
                           record.status.value, record.started_at, record.ended_at, json.dumps(record.to_json()), None)
                    connection.executemany("INSERT INTO run_values VALUES (?, ?, ?, ?, ?, ?, ?)", _values(record))
                connection.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            meta = {} if full_check is None else {"full_check": repr(full_check)}
            if listed is not None:
                meta["recordless"] = json.dumps(sorted(listed.recordless))
                if listed.stamp is None:
                    connection.execute("DELETE FROM meta WHERE key = 'listing'")
                else:
                    meta["listing"] = listed.stamp
            connection.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())

    # ---- queries ---------------------------------------------------------------------------
    def query(self, query: RunQuery, project: str | None) -> RunPage:
        with closing(self._connect()) as connection:
            live = self._live_statuses(connection, project) if query.statuses & set(_LIVE) else {}
            connection.create_function("live_status", 1, live.get, deterministic=True)
            where, params = _filters(query, project)
            base = f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY id DESC"
            if query.last is not None:
                base += f" LIMIT {int(query.last)}"
            join, order, sort_params = _order(query)
            total = connection.execute(f"SELECT COUNT(*) FROM ({base})", params).fetchone()[0]
            sql = (f"SELECT b.record FROM ({base}) b {join} ORDER BY {order} "
                   f"LIMIT {-1 if query.limit is None else int(query.limit)} OFFSET {int(query.offset)}")
            rows = connection.execute(sql, [*params, *sort_params]).fetchall()
            broken = tuple(p for (p,) in connection.execute("SELECT problem FROM runs WHERE problem IS NOT NULL ORDER BY id"))
            names = sorted(_value_names(connection, project), key=lambda kind_name: kind_name[1])
            seen = connection.execute("SELECT DISTINCT status, target, script FROM runs "
                                      "WHERE problem IS NULL AND (? IS NULL OR project = ?)", (project, project)).fetchall()
            if any(status == RunStatus.RUNNING.value for status, _, _ in seen):
                live = live or self._live_statuses(connection, project)
        runs = tuple(RunRecord.from_json(json.loads(text)).as_seen_now() for (text,) in rows)
        statuses = {s for s, _, _ in seen if s != RunStatus.RUNNING.value} | set(live.values())
        return RunPage(runs, total, broken, metric_names=tuple(n for k, n in names if k == "m"),
                       param_names=tuple(n for k, n in names if k == "p"),
                       statuses=tuple(s for s in RunStatus if s.value in statuses),
                       targets=tuple(sorted({t for _, t, _ in seen})), scripts=tuple(sorted({c for _, _, c in seen})))

    def ids(self) -> list[str]:
        with closing(self._connect()) as connection:
            return [i for (i,) in connection.execute("SELECT id FROM runs WHERE problem IS NULL ORDER BY id")]

    @staticmethod
    def _live_statuses(connection: sqlite3.Connection, project: str | None) -> dict[str, str]:
        """running or lost, for each record that says running (lost is seen now, never stored)."""
        rows = connection.execute("SELECT record FROM runs WHERE status = 'running' AND (? IS NULL OR project = ?)",
                                  (project, project))
        seen = (RunRecord.from_json(json.loads(text)).as_seen_now() for (text,) in rows)
        return {record.id: record.status.value for record in seen}


def _open(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30)
    # A cache: a commit need not wait for the disk. A file a crash damaged is found unreadable
    # (sqlite3.DatabaseError) and rebuilt from the store.
    connection.execute("PRAGMA synchronous = OFF")
    return connection


def _has_meta(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is not None


def _values(record: RunRecord) -> list[tuple]:
    rows = []
    for kind, values in (("m", record.metrics), ("p", record.params)):
        for name, value in values.items():
            rank, number, text = classify(value)
            rows.append((record.id, kind, str(name), int(rank), number, text, record.project))
    return rows


def _value_names(connection: sqlite3.Connection, project: str | None) -> list[tuple[str, str]]:
    """Every distinct (kind, name), each found by one seek in an index rather than a scan of every
    value: a store has a few names and ten thousands of values."""
    where = "kind = ?" if project is None else "project = ? AND kind = ?"
    first = f"SELECT name FROM run_values WHERE {where} ORDER BY name LIMIT 1"
    after = f"SELECT name FROM run_values WHERE {where} AND name > ? ORDER BY name LIMIT 1"
    found = []
    for kind in ("m", "p"):
        scope = (kind,) if project is None else (project, kind)
        row = connection.execute(first, scope).fetchone()
        while row is not None:
            found.append((kind, row[0]))
            row = connection.execute(after, (*scope, row[0])).fetchone()
    return found


def _filters(query: RunQuery, project: str | None) -> tuple[list[str], list]:
    where, params = ["problem IS NULL"], []
    if project is not None:
        where.append("project = ?")
        params.append(project)
    if query.target is not None:
        where.append("target = ?")
        params.append(query.target)
    if query.script and query.exact_script:
        where.append("script = ?")
        params.append(query.script)
    elif query.script:
        where.append("(script GLOB ? OR script GLOB ?)" if "/" not in query.script else "script GLOB ?")
        params += [query.script, f"*/{query.script}"] if "/" not in query.script else [query.script]
    if query.statuses:
        settled = [s.value for s in query.statuses if s not in _LIVE]
        wanted = [s.value for s in query.statuses if s in _LIVE]
        marks = ", ".join("?" * len(settled)) or "NULL"
        live = ", ".join("?" * len(wanted)) or "NULL"
        where.append(f"(status IN ({marks}) OR (status = 'running' AND live_status(id) IN ({live})))")
        params += settled + wanted
    return where, params


def _order(query: RunQuery) -> tuple[str, str, list]:
    """The join, ORDER BY clause and parameters for the query's sort; newest first without one."""
    sort = query.sort
    if sort is None:
        return "", "b.id DESC", []
    way = _DIRECTION[sort.descending]
    if sort.field in (SortField.METRIC, SortField.PARAM):
        kind = "m" if sort.field is SortField.METRIC else "p"
        join = "LEFT JOIN run_values v ON v.run_id = b.id AND v.kind = ? AND v.name = ?"
        order = f"COALESCE(v.rank, {int(ValueRank.MISSING)}), v.num {way}, v.text {way}, b.id DESC"
        return join, order, [kind, sort.name]
    if sort.field is SortField.STARTED:
        return "", f"b.id {way}", []
    if sort.field is SortField.DURATION:
        return "", f"b.ended_at IS NULL, julianday(b.ended_at) - julianday(b.started_at) {way}, b.id DESC", []
    return "", f"{_COLUMNS[sort.field]} {way}, b.id DESC", []
