"""What only the Azure backend does, on a real Azurite: container creation, failure messages,
recorded digests, SAS access, prefixes; and the scheme → backend registry."""
from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from plugins.azurite import AzuriteMissing, azurite_main, frozen

from sparkjobs.credentials import CredentialKind, StorageCredentials
from sparkjobs.errors import ArtifactTransferError, ConfigError, StorageError
from sparkjobs.storage import azure as azure_backend
from sparkjobs.storage.azure import AzureBlobStore, AzureOptions
from sparkjobs.storage.local import LocalStore
from sparkjobs.storage.registry import open_store
from sparkjobs.storage.uris import StorageLocation

pytestmark = pytest.mark.azurite


def connection(azurite, *, port: int | None = None, key: str | None = None) -> StorageCredentials:
    text = azurite.connection_string
    if port is not None:
        text = text.replace(f":{azurite.port}/", f":{port}/")
    if key is not None:
        text = text.replace(azurite.key, key)
    return StorageCredentials(azurite.account, CredentialKind.CONNECTION_STRING, text, "test")


def location(azurite, container: str, prefix: str = "p", scheme: str = "wasbs") -> str:
    host = "dfs" if scheme.startswith("abfs") else "blob"
    return f"{scheme}://{container}@{azurite.account}.{host}.core.windows.net/{prefix}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


def test_missing_container_is_created_on_first_write(azurite, azurite_container: str) -> None:
    raw = azurite.container_client(azurite_container)
    store = open_store(location(azurite, azurite_container), connection(azurite))
    assert not raw.exists()
    assert list(store.list("")) == []  # reading a missing container is just empty
    assert store.exists("k") is False
    with pytest.raises(FileNotFoundError):
        store.get_bytes("k")
    assert not raw.exists()  # reads do not create it
    store.put_bytes("k", b"v")
    assert raw.exists()
    assert [b.name for b in raw.list_blobs()] == ["p/k"]  # the key lives under the prefix


def test_an_existing_container_and_racing_first_writes_are_fine(monkeypatch, azurite, azurite_container: str) -> None:
    azurite.container_client(azurite_container).create_container()
    monkeypatch.setattr(azure_backend, "_READY", set())  # as in a fresh process
    store = open_store(location(azurite, azurite_container), connection(azurite))
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(lambda i: store.put_bytes(f"k{i}", b"v"), range(16)))
    assert len(list(store.list(""))) == 16


def test_unreachable_endpoint_is_one_clear_storage_error(azurite, azurite_container: str, tmp_path: Path) -> None:
    port = closed_port()
    store = open_store(location(azurite, azurite_container), connection(azurite, port=port))
    (tmp_path / "out").mkdir()
    for i in range(20):
        (tmp_path / "out" / f"{i}.txt").write_text("x")
    for call in (
        lambda: store.put_bytes("k", b"v"),
        lambda: store.get_bytes("k"),
        lambda: store.exists("k"),
        lambda: list(store.list("")),
        lambda: store.upload_tree(tmp_path / "out", "runs/1/outputs"),
    ):
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            call()
        assert time.monotonic() - started < 10
        assert not isinstance(caught.value, ArtifactTransferError)  # one error, not one per file
        message = str(caught.value)
        assert azurite_container in message and azurite.account in message
        assert f"http://127.0.0.1:{port}/{azurite.account}" in message
        assert "connection refused" in message
        assert azurite.key not in message


def test_a_frozen_endpoint_is_one_storage_error_saying_what_was_tried(own_azurite, azurite_container: str) -> None:
    """Default options: a frozen Azurite (it accepts connections, never answers) took 3 minutes
    to surface at the first call. Now two attempts of one 15 s read timeout, then one error."""
    store = open_store(location(own_azurite, azurite_container), connection(own_azurite))
    with frozen(own_azurite), pytest.raises(StorageError) as caught:
        store.put_bytes("k", b"v")
    message = str(caught.value)
    assert message.startswith(
        f"Cannot reach container {azurite_container!r} of storage account {own_azurite.account!r} "
        f"at {own_azurite.blob_endpoint} (no answer within 15 s; 2 attempts in "
    ), message
    assert "each allowed 4 s to connect and 15 s per read" in message and own_azurite.key not in message
    store.put_bytes("k", b"v")  # thawed, the same store works again
    assert store.get_bytes("k") == b"v"


def test_an_endpoint_frozen_during_an_upload_fails_it_once(own_azurite, azurite_container: str, tmp_path: Path) -> None:
    """Frozen mid-run, an upload took 6 minutes: every file waited out its own timeouts."""
    options = AzureOptions(read_timeout=1.0, operation_timeout=1.5, max_workers=4)
    where = StorageLocation.parse(location(own_azurite, azurite_container))
    store = AzureBlobStore(where, connection(own_azurite), options=options)
    store.put_bytes("before", b"stored")  # the container exists: the upload goes straight to its files
    (tmp_path / "out").mkdir()
    for i in range(40):
        (tmp_path / "out" / f"{i:02d}.txt").write_text(str(i))
    tried: list[str] = []  # a spy on the real per-file step: which files were attempted at all
    upload_one = store._upload_one
    store._upload_one = lambda key, path, progress: (tried.append(key), upload_one(key, path, progress))[1]  # type: ignore[method-assign]
    with frozen(own_azurite), pytest.raises(ArtifactTransferError) as caught:
        store.upload_tree(tmp_path / "out", "runs/1/outputs")
    message = str(caught.value)
    assert message.startswith(f"Cannot reach container {azurite_container!r}"), message
    assert own_azurite.blob_endpoint in message and "no answer within 1 s" in message and "attempts in" in message
    assert "40 of 40 files were not transferred: runs/1/outputs/00.txt" in message and "and 30 more." in message
    assert len(caught.value.failed) == 40 and caught.value.succeeded == []
    assert len(tried) <= options.max_workers  # the rest failed at once, without waiting
    assert own_azurite.key not in message


def test_wrong_key_is_refused_without_showing_it(azurite, azurite_container: str) -> None:
    wrong = "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmcga2V5IHdyb25nIGtleQ=="
    store = open_store(location(azurite, azurite_container), connection(azurite, key=wrong))
    with pytest.raises(StorageError) as caught:
        store.put_bytes("k", b"v")
    assert "refused" in str(caught.value) and wrong not in str(caught.value)
    assert "connection_string from test" in str(caught.value)


def test_repr_and_location_show_no_secret(azurite, azurite_container: str) -> None:
    store = open_store(location(azurite, azurite_container, "a/b"), connection(azurite))
    assert store.location == f"wasbs://{azurite_container}@devstoreaccount1.blob.core.windows.net/a/b"
    for text in (repr(store), str(store), store.location, store.endpoint):
        assert azurite.key not in text and "AccountKey" not in text


def test_digests_are_recorded_and_checked(azurite, azurite_container: str, tmp_path: Path) -> None:
    store = open_store(location(azurite, azurite_container), connection(azurite))
    raw = azurite.container_client(azurite_container)
    small, large = b"hello", os.urandom(9 * 1024 * 1024)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "small.txt").write_bytes(small)
    (tmp_path / "out" / "large.bin").write_bytes(large)
    store.upload_tree(tmp_path / "out", "o")
    for name, data in (("small.txt", small), ("large.bin", large)):
        props = raw.get_blob_client(f"p/o/{name}").get_blob_properties()
        assert props.metadata["sha256"] == hashlib.sha256(data).hexdigest()
        assert props.size == len(data)
    small_props = raw.get_blob_client("p/o/small.txt").get_blob_properties()
    assert bytes(small_props.content_settings.content_md5) == hashlib.md5(small).digest()
    assert small_props.content_settings.content_type == "text/plain"

    # A blob changed behind the store's back no longer matches its recorded digest.
    raw.get_blob_client("p/o/small.txt").upload_blob(b"HELLO", overwrite=True, metadata={"sha256": "0" * 64})
    with pytest.raises(ArtifactTransferError) as caught:
        store.download_tree("o", tmp_path / "back")
    assert list(caught.value.failed) == ["o/small.txt"]
    assert "SHA-256" in caught.value.failed["o/small.txt"]
    assert [r.key for r in caught.value.succeeded] == ["o/large.bin"]
    assert not (tmp_path / "back" / "small.txt").exists()


def test_progress_fires_during_a_large_transfer(azurite, azurite_container: str, tmp_path: Path) -> None:
    options = AzureOptions(block_size=1024 * 1024, max_concurrency=2)
    store = AzureBlobStore(StorageLocation.parse(location(azurite, azurite_container)), connection(azurite), options=options)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024 + 5))
    calls: list[int] = []
    store.upload_tree(tmp_path / "out", "o", progress=calls.append)
    assert len(calls) >= 6 and sum(calls) == 6 * 1024 * 1024 + 5
    calls.clear()
    store.download_tree("o", tmp_path / "back", progress=calls.append)
    assert len(calls) >= 3 and sum(calls) == 6 * 1024 * 1024 + 5


def test_verify_blocks_option_round_trips(azurite, azurite_container: str, tmp_path: Path) -> None:
    options = AzureOptions(block_size=1024 * 1024, verify_blocks=True)
    store = AzureBlobStore(StorageLocation.parse(location(azurite, azurite_container)), connection(azurite), options=options)
    data = os.urandom(3 * 1024 * 1024 + 1)
    (tmp_path / "f").write_bytes(data)
    store.put_file("f", tmp_path / "f")
    assert store.get_bytes("f") == data


def test_hadoop_folder_markers_are_not_listed(azurite, azurite_container: str) -> None:
    store = open_store(location(azurite, azurite_container), connection(azurite))
    store.put_bytes("runs/1/outputs/sub/part-0000", b"rows")
    raw = azurite.container_client(azurite_container)
    raw.upload_blob("p/runs/1/outputs/sub", b"", metadata={"hdi_isfolder": "true"})
    assert [o.key for o in store.list("runs/1")] == ["runs/1/outputs/sub/part-0000"]


def test_container_sas_reads_and_writes(azurite, azurite_container: str) -> None:
    raw = azurite.container_client(azurite_container)
    raw.create_container()
    token = generate_container_sas(
        azurite.account, azurite_container, account_key=azurite.key,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    sas = StorageCredentials(azurite.account, CredentialKind.SAS, "?" + token, "test")
    # SAS through a connection string, which is how a SAS reaches Azurite's endpoint.
    text = f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas.secret}"
    store = open_store(location(azurite, azurite_container), StorageCredentials(azurite.account, CredentialKind.CONNECTION_STRING, text))
    store.put_bytes("k", b"v")  # the SAS may not create containers: assumed to exist
    assert store.get_bytes("k") == b"v"
    assert [o.key for o in store.list("")] == ["k"]
    assert sas.secret not in repr(store) + store.location


def test_prefixes_keep_stores_apart_and_abfss_names_the_same_container(azurite, azurite_container: str) -> None:
    one = open_store(location(azurite, azurite_container, "team/one"), connection(azurite))
    two = open_store(location(azurite, azurite_container, "team/two"), connection(azurite))
    via_abfss = open_store(location(azurite, azurite_container, "team/one", "abfss"), connection(azurite))
    one.put_bytes("k", b"1")
    two.put_bytes("k", b"2")
    assert [o.key for o in one.list("")] == ["k"]
    assert via_abfss.get_bytes("k") == b"1"
    assert two.get_bytes("k") == b"2"


def test_credentials_must_be_for_the_locations_account(azurite, azurite_container: str) -> None:
    other = StorageCredentials("otheraccount", CredentialKind.ACCOUNT_KEY, "c2VjcmV0", "test")
    with pytest.raises(ConfigError, match="otheraccount"):
        open_store(location(azurite, azurite_container), other)


def test_identity_without_azure_identity_gives_the_install_hint(monkeypatch, azurite, azurite_container: str) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # as if the extra were not installed
    creds = StorageCredentials(azurite.account, CredentialKind.IDENTITY, None, "DefaultAzureCredential")
    with pytest.raises(StorageError, match=r"pip install 'sparkjobs\[identity\]'"):
        open_store(location(azurite, azurite_container), creds)


# ---- the registry ------------------------------------------------------------------------------
def test_registry_maps_schemes_to_backends(tmp_path: Path, azurite, azurite_container: str) -> None:
    assert isinstance(open_store(str(tmp_path / "a")), LocalStore)
    assert open_store(f"file://{tmp_path}/b").location == str(tmp_path / "b")
    for scheme in ("wasbs", "wasb", "abfss", "abfs"):
        store = open_store(location(azurite, azurite_container, "x", scheme), connection(azurite))
        assert isinstance(store, AzureBlobStore)
        assert store.location == f"wasbs://{azurite_container}@devstoreaccount1.blob.core.windows.net/x"


def test_registry_needs_credentials_for_azure(azurite_container: str) -> None:
    with pytest.raises(ConfigError, match="needs credentials"):
        open_store(f"wasbs://{azurite_container}@acct.blob.core.windows.net/p", None)


def test_registry_gives_the_install_hint_without_the_azure_extra(monkeypatch) -> None:
    # azure-storage-blob is installed for the tests, so the missing-extra path can only be
    # shown by making its import fail: a None entry in sys.modules makes `import` raise
    # ImportError, and the backend module is dropped so that it is imported afresh.
    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)
    monkeypatch.delitem(sys.modules, "sparkjobs.storage.azure", raising=False)
    creds = StorageCredentials("acct", CredentialKind.ACCOUNT_KEY, "c2VjcmV0", "test")
    with pytest.raises(StorageError, match=r"pip install 'sparkjobs\[azure\]'"):
        open_store("wasbs://data@acct.blob.core.windows.net/runs", creds)


def test_missing_azurite_is_a_clear_failure(tmp_path: Path) -> None:
    with pytest.raises(AzuriteMissing, match=r"bash tests/run"):
        azurite_main(tmp_path)
