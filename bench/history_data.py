"""The 10,000 runs bench/history.py times: records as sparkjobs writes them, spread over a year.

Each run has its record (with metrics and params), a ``metrics.jsonl`` and a ``driver.log`` beside it,
as a real run does; ids are start times spread over the last 365 days (a team's year of history),
so the newest runs are today's. A few records are running, a few are corrupt, and some runs did
not log the sorted metric or logged NaN or a string instead, so the index meets what real stores hold.
"""
from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from sparkjobs.errors import StorageError
from sparkjobs.runs import Artifact, RunRecord, RunStatus
from sparkjobs.storage.base import Store

__all__ = ["make_records", "write_runs", "DONE_MARKER"]

DONE_MARKER = "bench-history-complete"


def _metric(rng: random.Random, i: int) -> dict:
    roll = rng.random()
    if roll < 0.05:
        return {}  # this run logged no accuracy
    value: object = round(rng.random(), 6)
    if roll < 0.07:
        value = "NaN"
    elif roll < 0.08:
        value = "diverged"
    return {"accuracy": value, "loss": round(rng.random() * 3, 6), "epoch": i % 50}


def make_records(count: int, seed: int = 7) -> list[RunRecord]:
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=365)
    step = (now - start) / count
    records = []
    for i in range(count):
        when = start + step * i
        run_id = when.strftime("%Y%m%dT%H%M%S") + f"{when.microsecond // 1000:03d}Z-{i:06x}"
        status = rng.choices([RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.KILLED], [85, 12, 3])[0]
        if i >= count - 3:
            status = RunStatus.RUNNING
        ended = None if status is RunStatus.RUNNING else (when + timedelta(seconds=rng.randint(20, 3000)))
        records.append(RunRecord(
            id=run_id, project=rng.choice(["demo", "demo", "other"]), target=rng.choice(["local", "spark", "myhdi"]),
            script=rng.choice(["train.py", "score.py", "notebooks/explore.py"]), args=("--alpha", str(rng.random())),
            status=status, started_at=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            snapshot=f"{rng.getrandbits(256):064x}",
            ended_at=ended.isoformat(timespec="milliseconds").replace("+00:00", "Z") if ended else None,
            exit_code=None if ended is None else (0 if status is RunStatus.COMPLETED else 1),
            artifacts=(Artifact("outputs/model.pkl", 1000 + i, f"{rng.getrandbits(256):064x}"),),
            log=f"runs/{run_id}/driver.log", metrics=_metric(rng, i), params={"alpha": rng.random(), "seed": i % 5},
        ))
    return records


def _files(record: RunRecord, corrupt: bool) -> dict[str, bytes]:
    prefix = f"runs/{record.id}"
    body = b'{"id": "cut short' if corrupt else json.dumps(record.to_json(), indent=2, sort_keys=True).encode()
    series = "".join(json.dumps({"name": k, "value": v, "step": 0}) + "\n" for k, v in record.metrics.items())
    return {f"{prefix}/run.json": body, f"{prefix}/metrics.jsonl": series.encode(),
            f"{prefix}/driver.log": b"22/12/01 INFO SparkContext: Running Spark version 3.5.3\nresult 0.93\n"}


def write_runs(store: Store, records: list[RunRecord], *, workers: int = 16, corrupt_every: int = 2500,
               leaves: tuple[str, ...] = ("run.json", "metrics.jsonl", "driver.log")) -> None:
    """Write every run's files (those named in ``leaves``) into store, in parallel; every
    ``corrupt_every``-th record is cut short."""
    items = [(key, data) for n, r in enumerate(records) for key, data in _files(r, n % corrupt_every == 1).items()
             if key.rsplit("/", 1)[1] in leaves]

    def put(item: tuple[str, bytes]) -> None:
        for attempt in range(3):  # an emulator on a busy machine may time out; a put is idempotent
            try:
                store.put_bytes(*item)
                return
            except StorageError:
                if attempt == 2:
                    raise

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(put, items, chunksize=64):
            pass
    store.put_bytes(DONE_MARKER, str(len(records)).encode())
