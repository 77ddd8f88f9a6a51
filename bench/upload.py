"""Upload of run outputs to Azurite: sparkjobs' AzureBlobStore.upload_tree against a tuned plain
azure-storage-blob script, in the same process run, alternating, so machine noise hits both alike.

    python bench/upload.py [--rounds 7] [--big-mib 256] [--small 1000]

Cases: (a) 1,000 files of 4 KiB, (b) one 256 MiB file. The plain script uses a
ThreadPoolExecutor over files with a connection pool as wide as its threads, and
``max_concurrency`` for the big blob. sparkjobs does more per file than the plain script:
it hashes every byte (SHA-256 for the run record, MD5 for verification), checks the MD5 the
service computed (small files) or has the service check each block's MD5 and records the
file's MD5 on the blob (big files). Target: median ratio sparkjobs/plain >= 0.9.

Both sides use the same block size and concurrency, so the ratio is sparkjobs' own cost.
Azurite is started by this script (the test plugin's helpers) and stopped by its pid. It keeps
blobs in memory and frees overwritten ones only in its 10-minute GC, so a run needs about
2 x (rounds + 1) x big-mib of RAM for it (4 GiB with the defaults).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient, ContainerClient, LinearRetry

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from plugins.azurite import Azurite, start_azurite, stop_azurite  # noqa: E402

from sparkjobs.credentials import CredentialKind, StorageCredentials  # noqa: E402
from sparkjobs.storage.azure import AzureBlobStore  # noqa: E402
from sparkjobs.storage.base import sha256_file  # noqa: E402
from sparkjobs.storage.uris import StorageLocation  # noqa: E402

CONTAINER = "bench"
MiB = 1024 * 1024


def make_data(root: Path, small: int, big_mib: int) -> tuple[Path, Path]:
    small_dir, big_dir = root / "small", root / "big"
    small_dir.mkdir()
    big_dir.mkdir()
    for i in range(small):
        (small_dir / f"part-{i:05d}.bin").write_bytes(os.urandom(4096))
    with open(big_dir / "model.bin", "wb") as handle:
        for _ in range(big_mib):
            handle.write(os.urandom(MiB))
    return small_dir, big_dir


def plain_client(server: Azurite, workers: int, block_size: int) -> ContainerClient:
    """The tuned plain script's client: a pool as wide as its threads, short retries."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=workers)
    session.mount("http://", adapter)
    service = BlobServiceClient.from_connection_string(
        server.connection_string,
        transport=RequestsTransport(session=session),
        retry_policy=LinearRetry(backoff=0.5, retry_total=1),
        max_single_put_size=block_size,
        max_block_size=block_size,
    )
    return service.get_container_client(CONTAINER)


def plain_upload(container: ContainerClient, local_dir: Path, prefix: str, workers: int, concurrency: int) -> int:
    files = [p for p in local_dir.rglob("*") if p.is_file()]

    def one(path: Path) -> int:
        with open(path, "rb") as handle:
            container.upload_blob(f"{prefix}/{path.relative_to(local_dir).as_posix()}", handle,
                                  overwrite=True, max_concurrency=concurrency)
        return path.stat().st_size

    if len(files) == 1:
        return one(files[0])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(one, files))


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(this process, Azurite) CPU seconds so far: less sensitive than wall time to other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return usage.ru_utime + usage.ru_stime, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(run: Callable[[str], None], rounds: int, pid: int) -> dict[str, list[tuple[float, float, float]]]:
    """One unmeasured warm-up of each side, then alternate (AB, BA, ...); (wall, ours, Azurite) s.

    Each side overwrites its own blobs every round, so Azurite holds the same number of blobs
    throughout (its in-memory index slows down as blobs accumulate).
    """
    run("sparkjobs")
    run("plain")
    times: dict[str, list[tuple[float, float, float]]] = {"sparkjobs": [], "plain": []}
    for round_no in range(rounds):
        order = ["sparkjobs", "plain"] if round_no % 2 == 0 else ["plain", "sparkjobs"]
        for side in order:
            cpu_before, azurite_before = cpu_seconds(pid)
            start = time.perf_counter()
            run(side)
            wall = time.perf_counter() - start
            cpu_after, azurite_after = cpu_seconds(pid)
            times[side].append((wall, cpu_after - cpu_before, azurite_after - azurite_before))
    return times


def report(label: str, times: dict[str, list[tuple[float, float, float]]], amount: float, unit: str) -> float:
    walls = {side: [t[0] for t in runs] for side, runs in times.items()}
    ours, plain = statistics.median(walls["sparkjobs"]), statistics.median(walls["plain"])
    ratio = plain / ours  # throughput ratio sparkjobs / plain
    print(f"{label}:")
    for side, name in (("sparkjobs", "sparkjobs upload_tree"), ("plain", "plain azure SDK")):
        runs = times[side]
        cpu = statistics.median(t[1] for t in runs)
        azurite = statistics.median(t[2] for t in runs)
        print(f"  {name:22s} {amount / statistics.median(walls[side]):8.1f} {unit}  "
              f"cpu {cpu:.2f}s + Azurite {azurite:.2f}s  (wall " + ", ".join(f"{w:.2f}" for w in walls[side]) + ")")
    cpu_total = {side: statistics.median(t[1] + t[2] for t in runs) for side, runs in times.items()}
    print(f"  ratio sparkjobs/plain  {ratio:8.2f}x  (median wall time; target >= 0.90); by cpu time "
          f"(client + Azurite, steadier when other work shares the machine): {cpu_total['plain'] / cpu_total['sparkjobs']:.2f}x")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--small", type=int, default=1000, help="number of 4 KiB files")
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--plain-workers", type=int, default=16)
    parser.add_argument("--plain-concurrency", type=int, default=4)
    parser.add_argument("--plain-block-mib", type=int, default=8)
    args = parser.parse_args()

    server = start_azurite()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
            small_dir, big_dir = make_data(Path(tmp), args.small, args.big_mib)
            location = StorageLocation("wasbs", server.account, CONTAINER, "bench")
            store = AzureBlobStore(location, StorageCredentials(server.account, CredentialKind.CONNECTION_STRING,
                                                                 server.connection_string, "bench"))
            plain = plain_client(server, args.plain_workers, args.plain_block_mib * MiB)
            print(f"Azurite pid {server.pid} on port {server.port}; sparkjobs options: {store.options}")
            print(f"plain: workers={args.plain_workers} max_concurrency={args.plain_concurrency} "
                  f"block={args.plain_block_mib} MiB; {os.cpu_count()} cores\n")
            store.put_bytes("warmup", b"x")  # creates the container; both sides then start warm

            def run_small(side: str) -> None:
                if side == "sparkjobs":
                    store.upload_tree(small_dir, "small/sparkjobs")
                else:
                    plain_upload(plain, small_dir, "bench/small/plain", args.plain_workers, 1)

            def run_big(side: str) -> None:
                if side == "sparkjobs":
                    store.upload_tree(big_dir, "big/sparkjobs")
                else:
                    plain_upload(plain, big_dir, "bench/big/plain", 1, args.plain_concurrency)

            ratios = [
                report(f"(a) {args.small} files of 4 KiB", measure(run_small, args.rounds, server.pid), args.small, "files/s"),
                report(f"(b) one {args.big_mib} MiB file", measure(run_big, args.rounds, server.pid), args.big_mib, "MiB/s"),
            ]
            start = time.process_time()
            sha256_file(big_dir / "model.bin")
            print(f"  (SHA-256 of that file alone, which the run record needs and the plain script skips: "
                  f"{time.process_time() - start:.2f}s cpu)")
            store.close()
    finally:
        stop_azurite(server)
    return 0 if min(ratios) >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
