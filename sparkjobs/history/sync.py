"""Bringing the index up to date with the store, cheaply, before every query.

What is checked, and why it is enough:

* **Which runs exist**: the run ids, one name per run folder (a directory listing; on Blob a
  delimited listing, 5,000 names per request, never the blobs inside the folders). A local
  store is listed whole every time. On Blob only the days that new runs can have as ids are
  listed (run ids start with their UTC start time): from a day before the last whole listing
  to a day ahead of now, covering clock skew and a record first written hours after its id
  was taken (a large snapshot upload). The whole store is listed when the index is new and
  once an hour (``full_every``), which finds anything else (a record copied in with an old id).
* **Which records changed**: a record is replaced whole on every update, and its stamp (an
  ETag on Blob; mtime, size and inode locally) changes with it. A local store stamps every
  record each time (a stat each). On Blob only the records that can still change are stamped:
  those not yet ended (running, or lost), unreadable ones, and new ones; an ended run's record
  is not written again (README, "Run history"), so its cached copy stays true.
* A record is read after its stamp is taken, so the index never holds a copy older than its stamp.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from ..errors import RunNotFound, RunRecordError, StorageError
from ..runs import RUNS, RunRecord, RunRepository
from .index import RunIndex

__all__ = ["sync_index", "FULL_EVERY"]

FULL_EVERY = 3600.0  # seconds between whole listings of a Blob store
_MARGIN = timedelta(days=1)
log = logging.getLogger(__name__)


def sync_index(index: RunIndex, repo: RunRepository, *, full_every: float = FULL_EVERY,
               clock: Callable[[], float] = time.time) -> None:
    store = repo.store
    known, last_full = index.known()
    now = clock()
    full = store.cheap_listing or last_full is None or now - last_full >= full_every
    if full:
        listed = set(store.list_folders(RUNS))
        gone = set(known) - listed
    else:
        days = _days(last_full - _MARGIN.total_seconds(), now + _MARGIN.total_seconds())
        listed = {i for day in days for i in store.list_folders(RUNS, start=day)}
        gone = {i for i in known if i.startswith(tuple(days)) and i not in listed}
    check = sorted(listed if store.cheap_listing else (i for i in listed if i not in known or not known[i][1]))
    keys = {run_id: f"{RUNS}/{run_id}/run.json" for run_id in check}  # folder names: no '/' in them
    stamps = store.stamps(list(keys.values()))
    changed = []
    for run_id in check:
        stamp = stamps[keys[run_id]]
        if stamp is None:  # a folder without a record (outputs a failed store left behind)
            if run_id in known:
                gone.add(run_id)
        elif run_id not in known or known[run_id][0] != stamp:
            changed.append((run_id, stamp))
    full_check = now if full and not store.cheap_listing else None  # a local store is listed whole every time
    if not (changed or gone or full_check):
        return  # nothing to write: a warm list only reads the index
    workers = 1 if store.cheap_listing else store.max_workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        loaded = [item for item in pool.map(lambda pair: _load(repo, *pair), changed) if item is not None]
    index.update(loaded, gone, full_check)


def _load(repo: RunRepository, run_id: str, stamp: str) -> tuple[str, str, RunRecord | str] | None:
    try:
        return run_id, stamp, repo.load(run_id)
    except RunNotFound:
        return None  # deleted since it was listed
    except RunRecordError as exc:  # kept, so the list can say it is left out without reading it again
        return run_id, stamp, str(exc)
    except StorageError as exc:  # not kept: read again next time
        log.warning("Warning: run %s is left out: %s", run_id, exc)
        return None


def _days(start: float, end: float) -> list[str]:
    """The id prefixes (YYYYMMDD) of every UTC day from start to end."""
    day = datetime.fromtimestamp(start, timezone.utc).date()
    last = datetime.fromtimestamp(end, timezone.utc).date()
    days = []
    while day <= last:
        days.append(day.strftime("%Y%m%d"))
        day += timedelta(days=1)
    return days
