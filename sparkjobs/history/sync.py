"""Bringing the index up to date with the store, cheaply, before every query.

What is checked, and why it is enough:

* **Which runs exist**: the run ids, one name per run folder (a directory listing; on Blob a
  delimited listing, 5,000 names per request, never the blobs inside the folders). A local
  store is listed only when its ``runs`` folder has changed since the last listing (its mtime,
  once old enough to be trusted): adding or removing a run folder changes it. On Blob only the
  days that new runs can have as ids are listed (run ids start with their UTC start time): from a
  day before the last whole listing to a day ahead of now, covering clock skew and a record first
  written hours after its id was taken (a large snapshot upload). The whole store is listed when
  the index is new and once an hour (``full_every``), which finds anything else (a record copied
  in with an old id).
* **Which records changed**: a record is replaced whole on every update, and its stamp (an
  ETag on Blob; mtime, size and inode locally) changes with it. Only the records that can still
  change are asked for: those not yet ended (running, or lost), unreadable ones, new ones, and
  folders that had no record yet. An ended run's record is not written again (README, "Run
  history"), so its cached copy stays true; a local store still stamps every record once an hour
  (a stat each), which finds one edited by hand. On Blob each is one conditional GET
  (If-None-Match its ETag: a 304 while unchanged), which returns a new or changed record with its
  ETag, so a cold build costs one request per run, many at once.
* A record is read after its stamp is taken, and a listing after the listing stamp, so the index
  never holds a copy older than its stamp.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from ..errors import RunNotFound, RunRecordError, StorageError
from ..runs import RUNS, RunRecord, RunRepository
from ..storage.base import ProgressFactory
from .index import Listed, RunIndex

__all__ = ["sync_index", "reading_notice", "FULL_EVERY", "PROGRESS_FROM"]

FULL_EVERY = 3600.0  # seconds between whole listings of a Blob store
_MARGIN = timedelta(days=1)
log = logging.getLogger(__name__)


#: From how many records to read a caller is told (``progress``): a cold build of a large store.
PROGRESS_FROM = 500


def reading_notice(total: int, later: str) -> str:
    """What the CLI and the web page's console say when a build reads ``total`` records."""
    return (f"sparkjobs: Reading {total:,} run records into this machine's index of the run store (once: later "
            f"{later} read only what changed).")


def sync_index(index: RunIndex, repo: RunRepository, *, full_every: float = FULL_EVERY,
               clock: Callable[[], float] = time.time, progress: ProgressFactory | None = None) -> None:
    store = repo.store
    now = clock()
    state = index.known(unended_only=True)
    full = state.last_full is None or now - state.last_full >= full_every
    stamp = store.listing_stamp(RUNS)  # taken before listing: a change while listing shows next time
    if not full and stamp is not None and stamp == state.listed.stamp:  # no run folder added or removed
        listed, gone = {*state.runs, *state.listed.recordless}, set()
    else:
        state = index.known()
        if full or store.cheap_listing:
            listed = set(store.list_folders(RUNS))
            gone = set(state.runs) - listed
        else:
            days = _days(state.last_full - _MARGIN.total_seconds(), now + _MARGIN.total_seconds())
            with ThreadPoolExecutor(max_workers=min(len(days), store.max_workers)) as pool:  # a request per day, at once
                listed = {i for names in pool.map(lambda day: store.list_folders(RUNS, start=day), days) for i in names}
            gone = {i for i in state.runs if i.startswith(tuple(days)) and i not in listed}
    known = state.runs
    every_record = full and store.cheap_listing  # an hourly stat of every local record: one edited by hand
    # Newest first, so that a build cut short (Ctrl-C, a lost network) has kept the runs a list shows first.
    check = sorted((i for i in listed if every_record or i not in known or not known[i][1]), reverse=True)
    recordless = set(state.listed.recordless) & listed
    if store.cheap_listing:  # a stat per record, all at once; only new or changed ones are read
        stamps = store.stamps([f"{RUNS}/{run_id}/run.json" for run_id in check])  # folder names: no '/' in them
        absent = {i for i, stamp_now in zip(check, stamps.values()) if stamp_now is None}
        gone |= absent & known.keys()
        recordless |= absent - known.keys()
        check = [i for i, stamp_now in zip(check, stamps.values()) if stamp_now is not None and known.get(i, ("",))[0] != stamp_now]
    loaded: list[tuple[str, str, RunRecord | str]] = []
    advance = progress("run records indexed", len(check)) if progress and len(check) >= PROGRESS_FROM else None
    with ThreadPoolExecutor(max_workers=1 if store.cheap_listing else store.max_workers) as pool:
        each = map if store.cheap_listing else pool.map  # on Blob a request per record (a 304 when unchanged), many at once
        for start in range(0, len(check), _BATCH):
            batch = check[start:start + _BATCH]
            for run_id, outcome in zip(batch, each(lambda run_id: _reload(repo, run_id, known), batch)):
                if outcome is _ABSENT:  # a folder without a record (outputs a failed store left behind), or deleted
                    if run_id in known:
                        gone.add(run_id)
                    recordless.add(run_id)
                elif outcome is not None:
                    loaded.append(outcome)
                    recordless.discard(run_id)
            if len(loaded) >= _BATCH:  # kept as they come: a build cut short keeps what it read
                index.update(loaded, (), None)
                loaded = []
            if advance:
                advance(len(batch))
    listing = Listed(stamp, frozenset(recordless))
    if loaded or gone or full or listing != state.listed:
        index.update(loaded, gone, now if full else None, listing)  # otherwise a warm list only reads the index


_BATCH = 500  # records read before they are written to the index
_ABSENT = ("", "", "")


def _reload(repo: RunRepository, run_id: str, known: dict[str, tuple[str, bool]]
            ) -> tuple[str, str, RunRecord | str] | None:
    """(id, stamp, record or why it cannot be read) when the record is new or changed; None when
    unchanged, or when the store could not answer (it is asked again next time)."""
    try:
        changed = repo.reload(run_id, known[run_id][0] if run_id in known else None)
    except RunNotFound:
        return _ABSENT
    except StorageError as exc:
        log.warning("Warning: run %s is left out: %s", run_id, exc)
        return None
    if changed is None:
        return None
    stamp, record = changed
    # An unreadable record is kept with why, so the list can say it is left out without reading it again.
    return run_id, stamp, str(record) if isinstance(record, RunRecordError) else record


def _days(start: float, end: float) -> list[str]:
    """The id prefixes (YYYYMMDD) of every UTC day from start to end."""
    day = datetime.fromtimestamp(start, timezone.utc).date()
    last = datetime.fromtimestamp(end, timezone.utc).date()
    days = []
    while day <= last:
        days.append(day.strftime("%Y%m%d"))
        day += timedelta(days=1)
    return days
