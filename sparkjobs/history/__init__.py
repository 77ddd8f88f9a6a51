"""Run history at scale: a local SQLite index over the run store, queries over it, and compare.

    query.py    RunQuery (filters, window, sort, page) → RunPage; how logged values sort
    index.py    the SQLite file: one per store, under sparkjobs' home; a cache, rebuilt at will
    sync.py     what is read from the store before each query to bring the index up to date
    compare.py  RunComparison of 2 to 10 runs, for the CLI and the web page alike
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compare import CompareRow, OutputRow, RunComparison, compare_runs
    from .index import RunIndex, index_path
    from .query import RunPage, RunQuery, SortField, SortKey, parse_statuses
    from .sync import sync_index

# Each name is imported from its module on first use: `sparkjobs run` needs none of the index
# (sqlite3), sync or compare, and loading them would add to every submission's start-up.
_HOMES = {
    "CompareRow": "compare", "OutputRow": "compare", "RunComparison": "compare", "compare_runs": "compare",
    "RunIndex": "index", "index_path": "index",
    "RunPage": "query", "RunQuery": "query", "SortField": "query", "SortKey": "query", "parse_statuses": "query",
    "sync_index": "sync",
}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
