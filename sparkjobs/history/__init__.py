"""Run history at scale: a local SQLite index over the run store, queries over it, and compare.

    query.py    RunQuery (filters, window, sort, page) → RunPage; how logged values sort
    index.py    the SQLite file: one per store, under sparkjobs' home; a cache, rebuilt at will
    sync.py     what is read from the store before each query to bring the index up to date
    compare.py  RunComparison of 2 to 10 runs, for the CLI and the web page alike
"""
from .compare import CompareRow, OutputRow, RunComparison, compare_runs
from .index import RunIndex, index_path
from .query import RunPage, RunQuery, SortField, SortKey, parse_statuses
from .sync import sync_index

__all__ = ["CompareRow", "OutputRow", "RunComparison", "compare_runs", "RunIndex", "index_path", "RunPage", "RunQuery",
           "SortField", "SortKey", "parse_statuses", "sync_index"]
