"""Snapshots: ignore rules, content digests, the size cap, symlink escapes, and the
content-addressed copy in the run store (on the real filesystem)."""
from __future__ import annotations

import hashlib
import os

import pytest

from sparkjobs import snapshot as snapshot_module
from sparkjobs.errors import SnapshotError, StorageError
from sparkjobs.snapshot import build_snapshot, materialise
from sparkjobs.snapshot_store import SnapshotStore
from sparkjobs.storage.local import LocalStore

from helpers import write


def paths(snapshot):
    return {e.path for e in snapshot.entries}


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    write(root / "train.py", "print('hi')\n")
    write(root / "lib" / "util.py", "X = 1\n")
    write(root / "outputs" / "old.txt", "previous run\n")
    write(root / ".git" / "HEAD", "ref: main\n")
    write(root / "data" / "big.csv", "a,b\n")
    write(root / "notes.tmp", "scratch\n")
    return root


def test_outputs_and_git_are_always_excluded(project):
    snap = build_snapshot(project, cap_bytes=None)
    assert paths(snap) == {"train.py", "lib/util.py", "data/big.csv", "notes.tmp"}


def test_amlignore_wins_over_gitignore(project):
    write(project / ".gitignore", "data/\n")
    assert "data/big.csv" not in paths(build_snapshot(project, cap_bytes=None))
    write(project / ".amlignore", "*.tmp\n!outputs/\n")
    snap = paths(build_snapshot(project, cap_bytes=None))
    assert "notes.tmp" not in snap and "data/big.csv" in snap
    assert not any(p.startswith("outputs/") for p in snap)  # cannot be un-ignored


def test_digest_depends_on_content_and_paths_only(project, tmp_path):
    first = build_snapshot(project, cap_bytes=None)
    os.utime(project / "train.py", (1, 1))
    assert build_snapshot(project, cap_bytes=None).digest == first.digest
    copy = tmp_path / "elsewhere"
    materialise(first, copy)
    assert build_snapshot(copy, cap_bytes=None).digest == first.digest
    (project / "lib" / "util.py").rename(project / "lib" / "util2.py")
    assert build_snapshot(project, cap_bytes=None).digest != first.digest


def test_cap_exceeded_names_the_largest_files_and_the_fix(project):
    write(project / "data" / "huge.bin", "x" * 300_000)
    with pytest.raises(SnapshotError) as err:
        build_snapshot(project, cap_bytes=100_000)
    message = str(err.value)
    assert "data/huge.bin (0.3 MB)" in message and ".amlignore" in message and "snapshotCapMB" in message


def test_symlink_outside_the_project_is_never_followed(project, tmp_path):
    secret = write(tmp_path / "secret.txt", "do not ship\n")
    os.symlink(secret, project / "escape.txt")
    os.symlink(tmp_path, project / "escape_dir")
    os.symlink(project / "train.py", project / "inside_link.py")
    snap = build_snapshot(project, cap_bytes=None)
    assert "escape.txt" not in paths(snap) and not any(p.startswith("escape_dir") for p in paths(snap))
    assert "inside_link.py" in paths(snap)
    assert set(snap.skipped_links) == {"escape.txt", "escape_dir"}


def test_digest_cache_recognises_unchanged_files_without_reading_them(project, tmp_path, monkeypatch):
    cache = tmp_path / "cache.json"
    first = build_snapshot(project, cap_bytes=None, cache_file=cache)
    # Count the files hashed (the real function still does the hashing).
    hashed: list[str] = []
    real = snapshot_module.sha256_file
    monkeypatch.setattr(snapshot_module, "sha256_file", lambda path, *a, **k: hashed.append(str(path)) or real(path, *a, **k))
    assert build_snapshot(project, cap_bytes=None, cache_file=cache).digest == first.digest
    assert hashed == []
    write(project / "lib" / "util.py", "X = 2\n")
    assert build_snapshot(project, cap_bytes=None, cache_file=cache).digest != first.digest
    assert hashed == [str(project / "lib" / "util.py")]


def test_digest_cache_sees_an_edit_whose_size_and_mtime_were_restored(project, tmp_path):
    # cp -p, rsync -a and tar restore mtimes; the ctime they cannot restore gives the edit away.
    cache = tmp_path / "cache.json"
    first = build_snapshot(project, cap_bytes=None, cache_file=cache)
    stat = (project / "train.py").stat()
    (project / "train.py").write_text("print('ho')\n")
    os.utime(project / "train.py", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert build_snapshot(project, cap_bytes=None, cache_file=cache).digest == build_snapshot(project, cap_bytes=None).digest != first.digest


def test_materialise_refuses_a_file_changed_after_it_was_hashed_and_drops_the_cache(project, tmp_path):
    cache = tmp_path / "cache.json"
    snap = build_snapshot(project, cap_bytes=None, cache_file=cache)
    (project / "train.py").write_text("print('ho')\n")  # same size, after hashing
    with pytest.raises(SnapshotError, match="train.py changed after the snapshot was taken"):
        materialise(snap, tmp_path / "work")
    assert not cache.exists()  # the next run hashes afresh instead of failing forever
    again = build_snapshot(project, cap_bytes=None, cache_file=cache)
    materialise(again, tmp_path / "work2")
    assert (tmp_path / "work2" / "train.py").read_text() == "print('ho')\n"


def test_store_never_keeps_content_under_another_digest(project, tmp_path):
    snap = build_snapshot(project, cap_bytes=None)
    entry = next(e for e in snap.entries if e.path == "train.py")
    (project / "train.py").write_text("print('ho')\n")  # changed between hashing and upload
    store = LocalStore(tmp_path / "store")
    with pytest.raises(SnapshotError, match="train.py changed"):
        SnapshotStore(store).save(snap)
    assert not store.exists(SnapshotStore.object_key(entry.sha256))
    assert not SnapshotStore(store).is_complete(snap.digest)


class _EditedDuringUpload(LocalStore):
    """A real local store; the user edits a file (same size) while its object is being sent."""

    def __init__(self, root, path, key):
        super().__init__(root)
        self.path, self.key = path, key

    def _edit(self, key):
        if key == self.key:
            self.path.write_text("print('ho')\n")

    def _put_file(self, key, path, *, if_absent):
        self._edit(key)
        return super()._put_file(key, path, if_absent=if_absent)

    def _put_bytes(self, key, data, *, if_absent):
        self._edit(key)
        return super()._put_bytes(key, data, if_absent=if_absent)


def test_an_edit_during_upload_never_lands_under_the_old_digest(project, tmp_path):
    snap = build_snapshot(project, cap_bytes=None)
    entry = next(e for e in snap.entries if e.path == "train.py")
    store = _EditedDuringUpload(tmp_path / "store", project / "train.py", SnapshotStore.object_key(entry.sha256))
    SnapshotStore(store).save(snap)
    assert (project / "train.py").read_text() == "print('ho')\n"  # the edit did happen
    for obj in store.list("objects"):
        assert hashlib.sha256(store.get_bytes(obj.key)).hexdigest() == obj.key.rsplit("/", 1)[1]


def test_restore_refuses_a_corrupt_object(project, tmp_path):
    store = LocalStore(tmp_path / "store")
    snapshots = SnapshotStore(store)
    snap = build_snapshot(project, cap_bytes=None)
    snapshots.save(snap)
    entry = next(e for e in snap.entries if e.path == "train.py")
    (store.root / snapshots.object_key(entry.sha256)).write_text("tampered\n")
    with pytest.raises(StorageError, match="corrupt contents for train.py"):
        snapshots.restore(snap.digest, tmp_path / "restored")


def test_materialised_copy_is_isolated_from_the_project(project, tmp_path):
    snap = build_snapshot(project, cap_bytes=None)
    dest = tmp_path / "work"
    materialise(snap, dest)
    (dest / "train.py").write_text("changed by the job\n")
    assert (project / "train.py").read_text() == "print('hi')\n"


def test_store_is_content_addressed_and_incremental(project, tmp_path):
    store = LocalStore(tmp_path / "store")
    snapshots = SnapshotStore(store)
    first = build_snapshot(project, cap_bytes=None)
    report = snapshots.save(first)
    assert report.uploaded_files == 4 and not report.already_complete
    assert snapshots.save(first).already_complete
    write(project / "lib" / "util.py", "X = 2\n")
    second = build_snapshot(project, cap_bytes=None)
    report = snapshots.save(second, known_complete=first.digest)
    assert report.uploaded_files == 1
    assert report.uploaded_bytes == len("X = 2\n") + len(second.manifest_bytes()) + len(store.get_bytes(snapshots.marker_key(second.digest)))
    restored = tmp_path / "restored"
    snapshots.restore(first.digest, restored)
    assert (restored / "lib" / "util.py").read_text() == "X = 1\n"


def test_interrupted_upload_is_finished_next_time(project, tmp_path):
    store = LocalStore(tmp_path / "store")
    snapshots = SnapshotStore(store)
    snap = build_snapshot(project, cap_bytes=None)
    snapshots.save(snap)
    # Simulate an interruption after some objects: no marker, one object missing.
    store.delete(snapshots.marker_key(snap.digest))
    store.delete(snapshots.object_key(snap.entries[0].sha256))
    assert not snapshots.is_complete(snap.digest)
    report = snapshots.save(snap)
    assert report.uploaded_files == 1 and snapshots.is_complete(snap.digest)
    restored = tmp_path / "restored"
    snapshots.restore(snap.digest, restored)
    assert build_snapshot(restored, cap_bytes=None).digest == snap.digest
