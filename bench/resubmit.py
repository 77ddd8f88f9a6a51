"""Resubmitting a big project to an Azure Blob run store (Azurite), as `sparkjobs run` does it.

    python bench/resubmit.py [--files 2000] [--mib 200]

1. First submit of a 200 MB / 2,000-file project (all bytes uploaded once).
2. Resubmit, unchanged. Target: <= 0.3 s in snapshot plus upload, and 0 bytes uploaded.
3. One 1 KiB file changed. Target: bytes uploaded <= 1 KiB plus the manifest.
Bytes are counted twice: as sparkjobs reports them, and as new blobs in the container.
Azurite is started here and stopped by its pid.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from azure.storage.blob import BlobServiceClient  # noqa: E402

from plugins.azurite import start_azurite, stop_azurite  # noqa: E402
from sparkjobs.credentials import resolve_storage_credentials  # noqa: E402
from sparkjobs.runs import RunRepository  # noqa: E402
from sparkjobs.run_flow import _save_snapshot  # noqa: E402  (the exact code a run uses)
from sparkjobs.service import RunObserver, SparkJobs  # noqa: E402
from sparkjobs.snapshot import build_snapshot, cache_path_for  # noqa: E402
from sparkjobs.storage.registry import open_store  # noqa: E402


def container_sizes(connection: str, container: str) -> dict[str, int]:
    client = BlobServiceClient.from_connection_string(connection).get_container_client(container)
    return {b.name: b.size for b in client.list_blobs()}


def submit(service: SparkJobs, repo: RunRepository, root: Path) -> tuple[float, float, str]:
    start = time.perf_counter()
    snapshot = build_snapshot(root, cap_bytes=None, cache_file=cache_path_for(service.home / "cache" / "digests", root))
    scanned = time.perf_counter()
    _save_snapshot(service, repo, snapshot, RunObserver())
    return scanned - start, time.perf_counter() - scanned, snapshot.digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--mib", type=int, default=200)
    options = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sparkjobs-resubmit-"))
    azurite = start_azurite()
    try:
        root = base / "proj"
        size = options.mib * 1024 * 1024 // options.files
        for i in range(options.files):
            folder = root / f"pkg{i % 50}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"part{i}.bin").write_bytes(os.urandom(size))
        (root / "small.py").write_bytes(b"#" * 1024)
        container = "resubmit"
        location = f"wasbs://{container}@{azurite.account}.blob.core.windows.net/team"
        environ = {"SPARKJOBS_HOME": str(base / "home"), "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        service = SparkJobs(environ)
        repo = RunRepository(open_store(location, resolve_storage_credentials(location, environ)))

        scan, upload, _ = submit(service, repo, root)
        total = sum(container_sizes(azurite.connection_string, container).values())
        print(f"first submit   {options.files} files / {total / 2**20:.0f} MiB: scan {scan:.2f} s, upload {upload:.2f} s ({total / 2**20 / upload:.0f} MiB/s)")

        before = container_sizes(azurite.connection_string, container)
        scan, upload, _ = submit(service, repo, root)
        sent = sum(s for n, s in container_sizes(azurite.connection_string, container).items() if n not in before)
        print(f"resubmit       unchanged: snapshot {scan:.3f} s + upload {upload:.3f} s = {scan + upload:.3f} s "
              f"(target <= 0.3 s), {sent} bytes uploaded (target 0)")

        (root / "small.py").write_bytes(b"!" * 1024)
        before = container_sizes(azurite.connection_string, container)
        scan, upload, digest = submit(service, repo, root)
        new = {n: s for n, s in container_sizes(azurite.connection_string, container).items() if n not in before}
        manifest = new.get(f"team/snapshots/{digest}/manifest.json", 0)
        marker = new.get(f"team/snapshots/{digest}/COMPLETE", 0)
        content = sum(new.values()) - manifest - marker
        print(f"one 1 KiB file changed: {content} bytes of content + manifest {manifest} + marker {marker} "
              f"(target <= 1024 + manifest); {len(new)} new blobs; {scan + upload:.3f} s")
    finally:
        stop_azurite(azurite)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
