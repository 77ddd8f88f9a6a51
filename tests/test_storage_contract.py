"""One contract for every Store backend: a local folder, and Azure Blob on a real Azurite.

Each test takes the ``store`` fixture and so runs once per backend. ``plant`` writes an
object the way a foreign writer would (straight to the folder, or with the plain SDK), to
show what the Store does with names it did not write itself.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sparkjobs.credentials import resolve_storage_credentials
from sparkjobs.errors import UnsafePathError
from sparkjobs.storage.base import Store
from sparkjobs.storage.registry import open_store

MiB = 1024 * 1024
LARGE = 8 * MiB + 12345  # above the Azure backend's block size: the chunked path


@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.azurite)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Callable[[str, bytes], None]]]:
    if request.param == "local":
        root = tmp_path / "store"

        def plant_file(name: str, data: bytes) -> None:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)

        yield open_store(str(root)), plant_file
        return
    azurite = request.getfixturevalue("azurite")
    container = request.getfixturevalue("azurite_container")
    location = f"wasbs://{container}@{azurite.account}.blob.core.windows.net/team/store"
    environ = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    store = open_store(location, resolve_storage_credentials(location, environ))
    raw = azurite.container_client(container)

    def plant_blob(name: str, data: bytes) -> None:
        raw.upload_blob(f"team/store/{name}", data, overwrite=True)

    yield store, plant_blob
    store.close()


@pytest.fixture
def store(backend) -> Store:
    return backend[0]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_and_get_bytes(store: Store) -> None:
    assert store.put_bytes("runs/1/run.json", b'{"a": 1}') is True
    assert store.get_bytes("runs/1/run.json") == b'{"a": 1}'
    store.put_bytes("runs/1/run.json", b"replaced")
    assert store.get_bytes("runs/1/run.json") == b"replaced"
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""


def test_put_and_get_json(store: Store) -> None:
    store.put_json("runs/2/run.json", {"id": "2", "args": ["x"]})
    assert store.get_json("runs/2/run.json") == {"id": "2", "args": ["x"]}


@pytest.mark.parametrize("size", [0, 5, LARGE], ids=["empty", "small", "large"])
def test_put_and_get_file(store: Store, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    assert store.put_file("objects/ab/blob", source) is True
    target = tmp_path / "deep" / "out.bin"
    store.get_file("objects/ab/blob", target)
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]  # no partial files left


def test_list_with_prefix(store: Store) -> None:
    for key in ("a/1", "a/b/2", "ab/3", "c"):
        store.put_bytes(key, key.encode())
    assert sorted(o.key for o in store.list("a")) == ["a/1", "a/b/2"]
    assert sorted(o.key for o in store.list("a/")) == ["a/1", "a/b/2"]
    assert sorted(o.key for o in store.list("")) == ["a/1", "a/b/2", "ab/3", "c"]
    assert {o.key: o.size for o in store.list("a/b")} == {"a/b/2": 5}
    assert list(store.list("nothing/here")) == []


def test_exists_and_delete(store: Store) -> None:
    assert store.exists("k/v") is False
    store.put_bytes("k/v", b"1")
    assert store.exists("k/v") is True
    store.delete("k/v")
    assert store.exists("k/v") is False
    store.delete("k/v")  # deleting an absent key is not an error


def test_missing_key_is_file_not_found(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.get_bytes("no/such/key")
    with pytest.raises(FileNotFoundError):
        store.get_file("no/such/key", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_conditional_write_does_not_overwrite(store: Store, tmp_path: Path) -> None:
    assert store.put_bytes("snapshots/d/COMPLETE", b"first", if_absent=True) is True
    assert store.put_bytes("snapshots/d/COMPLETE", b"second", if_absent=True) is False
    assert store.get_bytes("snapshots/d/COMPLETE") == b"first"
    for size in (3, LARGE):
        source = tmp_path / f"f{size}"
        source.write_bytes(os.urandom(size))
        assert store.put_file(f"objects/{size}", source, if_absent=True) is True
        other = tmp_path / "other"
        other.write_bytes(b"x" * size)
        assert store.put_file(f"objects/{size}", other, if_absent=True) is False
        assert store.get_bytes(f"objects/{size}") == source.read_bytes()


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "model.pkl": os.urandom(1000),
        "empty.txt": b"",
        "plots/loss.png": os.urandom(300),
        "plots/deep/er/table.csv": b"a,b\n1,2\n",
        "weights.bin": os.urandom(LARGE),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_tree_round_trip_with_checksums(store: Store, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "outputs")
    moved: list[int] = []
    uploaded = store.upload_tree(tmp_path / "outputs", "runs/r1/outputs", progress=moved.append)
    assert [(r.key, r.size, r.sha256) for r in uploaded] == sorted(
        (f"runs/r1/outputs/{name}", len(data), sha(data)) for name, data in files.items()
    )
    assert sum(moved) == sum(len(d) for d in files.values())

    moved.clear()
    downloaded = store.download_tree("runs/r1/outputs", tmp_path / "back", progress=moved.append)
    assert downloaded == uploaded
    assert sum(moved) == sum(len(d) for d in files.values())
    for name, data in files.items():
        assert sha((tmp_path / "back" / name).read_bytes()) == sha(data)


def test_empty_tree(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert store.upload_tree(tmp_path / "empty", "runs/r2/outputs") == []
    assert store.download_tree("runs/r2/outputs", tmp_path / "back") == []


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../b", "a//b", "a/./b", "a\\b", ""])
def test_unsafe_keys_are_refused(store: Store, key: str, tmp_path: Path) -> None:
    calls = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.get_file(key, tmp_path / "out"),
    ]
    if key:  # as a prefix, "" is the store's root
        calls += [lambda: list(store.list(key)), lambda: store.upload_tree(tmp_path, key)]
    for call in calls:
        with pytest.raises(UnsafePathError):
            call()


def test_download_tree_refuses_a_stored_key_that_would_escape(backend, tmp_path: Path) -> None:
    store, plant = backend
    store.put_bytes("runs/r3/outputs/fine.txt", b"ok")
    # A foreign writer's name: Azure turns '\' into '/', storing runs/r3/outputs/../../../evil;
    # a folder keeps the backslashes, which no key may contain either.
    plant("runs/r3/outputs/..\\..\\..\\evil", b"escaped")
    keys = [o.key for o in store.list("runs/r3")]
    assert any("evil" in k for k in keys)
    with pytest.raises(UnsafePathError):
        store.download_tree("runs/r3/outputs", tmp_path / "dest" / "inner")
    assert not any(p.name == "evil" for p in tmp_path.rglob("*"))
    assert not (tmp_path / "dest" / "inner" / "fine.txt").exists()  # refused before any transfer


def test_list_folders_names_each_folder_once_and_filters_by_start(store: Store) -> None:
    for key in ("runs/2026a/run.json", "runs/2026a/outputs/x/y.bin", "runs/2025b/run.json", "runs/2026c/driver.log",
                "runs/loose.txt", "other/2026d/run.json"):
        store.put_bytes(key, b"x")
    assert store.list_folders("runs") == ["2025b", "2026a", "2026c"]
    assert store.list_folders("runs", start="2026") == ["2026a", "2026c"]
    assert store.list_folders("runs/2026a") == ["outputs"]
    assert store.list_folders("nothing-here") == []
    with pytest.raises(UnsafePathError):
        store.list_folders("../runs")


def test_a_stamp_changes_when_the_object_is_replaced(store: Store, backend) -> None:
    plant = backend[1]
    assert store.stamp("runs/1/run.json") is None
    store.put_bytes("runs/1/run.json", b"first")
    first = store.stamp("runs/1/run.json")
    assert first is not None and store.stamp("runs/1/run.json") == first
    # Replaced in place by another writer (a local file keeps its inode, and its mtime may not
    # move within the filesystem's clock tick: the size tells it here).
    plant("runs/1/run.json", b"second")
    second = store.stamp("runs/1/run.json")
    assert second not in (None, first)
    assert store.stamps(["runs/1/run.json", "runs/2/run.json"]) == {"runs/1/run.json": second, "runs/2/run.json": None}


def test_get_if_changed_reads_only_a_new_or_replaced_object(store: Store, backend) -> None:
    """The index's one read per record: content with its stamp, nothing while the stamp holds
    (on Blob a conditional GET answered 304)."""
    plant = backend[1]
    with pytest.raises(FileNotFoundError):
        store.get_if_changed("runs/1/run.json", None)
    store.put_bytes("runs/1/run.json", b"first")
    data, first = store.get_if_changed("runs/1/run.json", None)
    assert data == b"first" and first == store.stamp("runs/1/run.json")
    assert store.get_if_changed("runs/1/run.json", first) is None
    plant("runs/1/run.json", b"second!")
    data, second = store.get_if_changed("runs/1/run.json", first)
    assert data == b"second!" and second not in (None, first)
    assert store.get_if_changed("runs/1/run.json", "an old stamp") == (b"second!", second)
