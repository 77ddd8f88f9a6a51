"""A run store in an Azure Blob container (or Azurite, its emulator), over azure-storage-blob.

Every key lives under the location's prefix in one container. Why it is built this way:

* Azure exceptions are translated in one place (:meth:`AzureBlobStore._seam`) into
  ``FileNotFoundError`` or one ``StorageError`` sentence naming account, container and
  endpoint. The SDK's own messages are never shown: they can carry SAS-signed URLs.
* A dead or frozen endpoint surfaces as one ``StorageError`` within about half a minute,
  saying what was tried. Connecting has a short timeout; a read that gets no byte for
  ``read_timeout`` ends the attempt; retries are few, and none starts once an operation is
  ``operation_timeout`` old. (The SDK's defaults took 3 minutes to give up on a frozen
  Azurite, 6 during an upload.) Once one file of a tree transfer finds the endpoint
  unreachable, the files not yet started fail at once instead of each waiting it out.
* The requests connection pool is sized to the number of parallel transfers; requests'
  default of 10 connections would serialise a wider thread pool.
* An upload reads each file once. A small file is read whole, hashed (MD5 and SHA-256) and
  sent in one Put Blob; the MD5 the service computed from what it received must equal ours.
  A large file is read through a forward-only hashing reader while the SDK sends its blocks
  in parallel; the byte count must match, and with ``verify_blocks`` the service checks
  each block's MD5 too (over HTTPS, TLS already guards the bytes in transit).
* Every blob gets its SHA-256 as metadata (``sha256``), the digest the run record keeps, so
  every download is verified end to end at no extra hashing cost.
* The container is created on first write, once per process; a container-scoped SAS that
  may not create containers is assumed to name an existing one. ``create_container`` does it
  ahead of a Spark job that will write there through Hadoop (``prepare_writes``: the wasb driver cannot).
* TLS is always verified: against the system's CAs, or the credentials' ``ca_bundle`` when the
  endpoint's certificate comes from a CA of one's own (an HTTPS emulator, Azure Stack).
"""
from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobClient, BlobServiceClient, ContentSettings, LinearRetry
from urllib3.util.retry import Retry

from ..credentials import IDENTITY_HINT, CredentialKind, StorageCredentials, parse_connection_string
from ..errors import ArtifactTransferError, ConfigError, StorageError
from .base import ProgressCallback, Store, StoredObject, TransferResult, check_key, check_prefix
from .uris import StorageLocation

__all__ = ["AzureBlobStore", "AzureOptions"]

_MiB = 1024 * 1024
_SHA256 = "sha256"  # blob metadata: the SHA-256 the run record keeps, for end-to-end checks
_READY: set[tuple[str, str]] = set()  # (endpoint, container) known to exist in this process
_READY_LOCK = threading.Lock()
_CREATE = "create the container"  # the seam's action when creating it


@dataclass(frozen=True)
class AzureOptions:
    """Transfer and network settings; the defaults are tuned against the upload benchmark."""

    max_workers: int = 16  # files transferred at once by upload_tree/download_tree
    max_concurrency: int = 4  # blocks of one large file transferred at once
    block_size: int = 8 * _MiB  # files up to this size go in one request
    connect_timeout: float = 4.0
    read_timeout: float = 15.0  # no byte for this long: the attempt ends (Azure answers in ms)
    retries: int = 2
    retry_backoff: float = 0.5
    operation_timeout: float = 20.0  # no retry starts once an operation is this old
    verify_blocks: bool = False  # also have the service check each block's MD5 (costs CPU on both ends)


class AzureBlobStore(Store):
    def __init__(
        self,
        location: StorageLocation,
        credentials: StorageCredentials,
        *,
        options: AzureOptions | None = None,
    ) -> None:
        if location.is_local:
            raise ConfigError(f"{location} is a local folder, not an Azure Blob location.")
        if credentials.account != location.account:
            raise ConfigError(
                f"The credentials are for storage account {credentials.account}, not {location.account}."
            )
        self._where = location
        self._creds = credentials
        self.options = options or AzureOptions()
        self.max_workers = self.options.max_workers
        # Always the wasbs:// spelling of the container and prefix (an abfss:// location names
        # the same container); never a secret, which lives only in the credentials.
        self.location = location.uri(scheme="wasbs", folder=False)
        self._service = _service_client(location, credentials, self.options)
        self._container = self._service.get_container_client(location.container)
        # The endpoint as reached, without any query string (a SAS would be there).
        self.endpoint = f"{self._service.scheme}://{self._service.primary_hostname}"
        self._ready = False  # this store may write without creating the container

    def close(self) -> None:
        self._service.close()

    # ---- the one seam where Azure exceptions become ours -------------------------------------
    @contextmanager
    def _seam(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except AzureError as exc:
            raise self._translate(exc, action, key) from exc

    def _translate(self, exc: AzureError, action: str, key: str | None) -> Exception:
        what = f"{action} {key!r}" if key else action
        where = (
            f"container {self._where.container!r} of storage account {self._where.account!r} "
            f"at {self.endpoint}"
        )
        if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
            if _network_reason(exc) in ("ssl", "certificate"):
                return _Unreachable(
                    f"Cannot reach {where}: its TLS certificate could not be verified"
                    f"{' against ' + self._creds.ca_bundle if self._creds.ca_bundle else ''}. If a CA of your own "
                    f"signs it, name that CA's file as 'ca_bundle' under storage.{self._where.account} in the "
                    "credentials file."
                )
            return _Unreachable(
                f"Cannot reach {where} ({self._what_was_tried(exc)}); check the store URL, the "
                "network, and for Azurite that the emulator is running."
            )
        status = getattr(exc, "status_code", None)
        code = _error_code(exc)
        if isinstance(exc, ResourceNotFoundError) and action == "read":
            return FileNotFoundError(key)
        if code == "ContainerNotFound":
            return StorageError(f"There is no {where}, and these credentials could not create it.")
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            refused = f"create {where}" if action == _CREATE else f"{what} in {where}"
            return StorageError(
                f"Azure Blob storage refused to {refused} ({code or status}); check the "
                f"{self._creds.kind.value} from {self._creds.source or 'the credentials'}."
            )
        if isinstance(exc, HttpResponseError):
            return StorageError(f"Could not {what} in {where}: HTTP {status} {code or ''}".rstrip() + ".")
        return StorageError(f"Could not {what} in {where} ({type(exc).__name__}).")

    def _what_was_tried(self, exc: AzureError) -> str:
        options = self.options
        reason = _network_reason(exc)
        if reason == "timed out":
            connecting = isinstance(exc, ServiceRequestError)
            reason = (
                f"could not connect within {options.connect_timeout:g} s"
                if connecting
                else f"no answer within {options.read_timeout:g} s"
            )
        limits = f"{options.connect_timeout:g} s to connect and {options.read_timeout:g} s per read"
        tried: _Tried | None = getattr(exc, _TRIED, None)
        if tried is None:
            return f"{reason}; allowed {limits}"
        attempts = f"{tried.attempts} attempt{'s' if tried.attempts != 1 else ''} in {tried.seconds:.0f} s"
        return f"{reason}; {attempts}, each allowed {limits}"

    def _blob(self, key: str) -> BlobClient:
        return self._container.get_blob_client(self._where.key(key))

    def prepare_writes(self) -> None:
        """Create the container before a Spark job writes into it through Hadoop: the wasb
        driver cannot create a file in a missing container (its create() looks for the
        container's root folder, finds none and throws a NullPointerException). A wrong key is
        found here too, before any job runs."""
        self._ensure_container()

    def _ensure_container(self) -> None:
        """Create the container on first write, once per process; racing creators are fine."""
        marker = (self.endpoint, self._where.container)
        if self._ready or marker in _READY:
            return
        with _READY_LOCK:
            if self._ready or marker in _READY:
                return
            with self._seam(_CREATE):
                try:
                    self._container.create_container()
                except ResourceExistsError:
                    pass
                except HttpResponseError as exc:
                    # A container-scoped SAS may write blobs but not create containers: assume
                    # the container exists (for this store only; its first write will tell).
                    # An account key may create anything, so its 403 is a wrong key.
                    if exc.status_code != 403 or _error_code(exc) == "AuthenticationFailed" or self._signs_with_key():
                        raise
                    self._ready = True
                    return
            _READY.add(marker)

    def _signs_with_key(self) -> bool:
        """Whether requests are signed with the account key, which grants every right."""
        creds = self._creds
        if creds.kind is CredentialKind.ACCOUNT_KEY:
            return True
        return creds.kind is CredentialKind.CONNECTION_STRING and bool(
            parse_connection_string(creds.secret or "").get("accountkey")
        )

    # ---- primitives ----------------------------------------------------------------------------
    def _put_bytes(self, key: str, data: bytes, *, if_absent: bool) -> bool:
        return self._put_data(key, data, hashlib.sha256(data).hexdigest(), if_absent) is not None

    def _put_file(self, key: str, path: Path, *, if_absent: bool) -> bool:
        return self._upload_path(key, path, if_absent, None) is not None

    def _get_bytes(self, key: str) -> bytes:
        with self._seam("read", key):
            downloader = self._blob(key).download_blob(max_concurrency=self.options.max_concurrency)
            data = downloader.readall()
        recorded = (downloader.properties.metadata or {}).get(_SHA256)
        if recorded:
            _check(key, "SHA-256", recorded, hashlib.sha256(data).hexdigest(), f"downloaded from {self.location}")
        return data

    def _get_file(self, key: str, path: Path) -> None:
        self._download_to(key, path, None)

    def _list(self, prefix: str) -> Iterator[StoredObject]:
        base = self._where.prefix
        start = "/".join(p for p in (base, prefix) if p)
        strip = len(base) + 1 if base else 0
        with self._seam("list", prefix or "/"):
            blobs = self._container.list_blobs(name_starts_with=f"{start}/" if start else None, include=["metadata"])
            try:
                for blob in blobs:
                    # Hadoop's wasb driver marks folders with empty hdi_isfolder blobs: not files.
                    if (blob.metadata or {}).get("hdi_isfolder") == "true" or blob.name.endswith("/"):
                        continue
                    yield StoredObject(blob.name[strip:], blob.size)
            except ResourceNotFoundError:
                return  # no container yet, so nothing stored

    # ---- change detection for the run index: names per folder, ETags ---------------------------
    cheap_listing = False

    def list_folders(self, prefix: str, start: str = "") -> list[str]:
        """One delimited listing: a name per folder, not every blob inside them."""
        base = "/".join(p for p in (self._where.prefix, check_prefix(prefix)) if p)
        strip = len(base) + 1 if base else 0
        names = []
        with self._seam("list", prefix or "/"):
            try:
                for item in self._container.walk_blobs(name_starts_with=f"{base}/{start}" if base else start, delimiter="/"):
                    if item.name.endswith("/"):
                        names.append(item.name[strip:-1])
            except ResourceNotFoundError:
                return []  # no container yet
        return sorted(names)

    def stamp(self, key: str) -> str | None:
        with self._seam("read", check_key(key)):
            try:
                return str(self._blob(key).get_blob_properties().etag)
            except ResourceNotFoundError:
                return None

    def stamps(self, keys: list[str]) -> dict[str, str | None]:
        if len(keys) < 2:
            return super().stamps(keys)
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return dict(zip(keys, pool.map(self.stamp, keys)))

    def get_if_changed(self, key: str, stamp: str | None) -> tuple[bytes, str] | None:
        """One request either way: a GET with If-None-Match, whose 304 says the ETag is unchanged;
        the ETag of what it returns comes in the same answer."""
        check_key(key)
        condition = {"etag": stamp, "match_condition": MatchConditions.IfModified} if stamp else {}
        with self._seam("read", key):
            try:
                downloader = self._blob(key).download_blob(max_concurrency=self.options.max_concurrency, **condition)
            except HttpResponseError as exc:
                if exc.status_code == 304:  # the SDK calls it ResourceModifiedError
                    return None
                raise
            data = downloader.readall()
        recorded = (downloader.properties.metadata or {}).get(_SHA256)
        if recorded:
            _check(key, "SHA-256", recorded, hashlib.sha256(data).hexdigest(), f"downloaded from {self.location}")
        return data, str(downloader.properties.etag)

    def _exists(self, key: str) -> bool:
        with self._seam("read", key):
            return self._blob(key).exists()

    def _delete(self, key: str) -> None:
        with self._seam("delete", key), suppress(ResourceNotFoundError):
            self._blob(key).delete_blob()

    # ---- tree transfer: the base class's thread pool, with a leaner per-file step --------------
    def upload_tree(
        self, local_dir: Path | str, prefix: str, *, progress: ProgressCallback | None = None
    ) -> list[TransferResult]:
        check_prefix(prefix)
        self._ensure_container()  # a dead endpoint is one StorageError, not one per file
        return super().upload_tree(local_dir, prefix, progress=progress)

    def _upload_one(self, key: str, path: Path, progress: ProgressCallback | None) -> TransferResult:
        result = self._upload_path(key, path, False, progress)
        assert result is not None  # an unconditional write always writes
        return result

    def _download_one(self, key: str, path: Path, progress: ProgressCallback | None) -> TransferResult:
        path.parent.mkdir(parents=True, exist_ok=True)
        return self._download_to(key, path, progress)

    def _transfer(
        self,
        jobs: dict[str, Path],
        one: Callable[[str, Path, ProgressCallback | None], TransferResult],
        progress: ProgressCallback | None,
        refused: dict[str, str] | None = None,
    ) -> list[TransferResult]:
        """The base class's parallel transfer, stopped early when the endpoint is unreachable:
        the files in flight wait out their timeouts once, the rest fail at once."""
        down: list[_Unreachable] = []

        def guarded(key: str, path: Path, progress: ProgressCallback | None) -> TransferResult:
            if down:
                raise down[0]
            try:
                return one(key, path, progress)
            except _Unreachable as exc:
                down.append(exc)
                raise

        try:
            return super()._transfer(jobs, guarded, progress, refused)
        except ArtifactTransferError as exc:
            if not down:
                raise
            names = sorted(exc.failed)
            listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            raise ArtifactTransferError(
                f"{str(down[0]).rstrip('.')}. {len(names)} of {len(jobs) + len(refused or {})} files were not "
                f"transferred: {listed}.",
                exc.failed,
                exc.succeeded,
            ) from exc

    # ---- uploads ---------------------------------------------------------------------------------
    def _upload_path(
        self, key: str, path: Path, if_absent: bool, progress: ProgressCallback | None
    ) -> TransferResult | None:
        """Upload one file, hashing it in the same read; None when if_absent found the key taken."""
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= self.options.block_size:
                data = handle.read()
                sha256 = hashlib.sha256(data).hexdigest()
                if self._put_data(key, data, sha256, if_absent) is None:
                    return None
                if progress:
                    progress(len(data))
                return TransferResult(key, len(data), sha256)
            return self._put_large(key, handle, size, if_absent, progress)

    def _put_data(self, key: str, data: bytes, sha256: str, if_absent: bool) -> dict[str, Any] | None:
        """Put bytes held in memory; None when if_absent found the key taken.

        Up to block_size this is one Put Blob, whose MD5 the service computes from what it
        received and returns: it must equal ours. Larger data goes in blocks.
        """
        self._ensure_container()
        md5 = hashlib.md5(data).digest()
        with self._seam("write", key):
            try:
                response = self._blob(key).upload_blob(
                    data,
                    length=len(data),
                    overwrite=not if_absent,
                    metadata={_SHA256: sha256},
                    content_settings=ContentSettings(content_type=_content_type(key), content_md5=bytearray(md5)),
                )
            except (ResourceExistsError, ResourceModifiedError):
                if if_absent:
                    return None
                raise
        if len(data) <= self.options.block_size:  # one Put Blob: the service hashed what it got
            returned = response.get("content_md5")
            _check(key, "MD5", md5, bytes(returned) if returned else None, f"after upload to {self.location}")
        return response

    def _put_large(
        self, key: str, handle: BinaryIO, size: int, if_absent: bool, progress: ProgressCallback | None
    ) -> TransferResult | None:
        """Blocks in parallel (the SDK's max_concurrency) from one ordered, hashing read."""
        self._ensure_container()
        reader = _HashingReader(handle)
        blob = self._blob(key)
        with self._seam("write", key):
            try:
                response = blob.upload_blob(
                    cast(IO[bytes], reader),
                    length=size,
                    overwrite=not if_absent,
                    max_concurrency=self.options.max_concurrency,
                    validate_content=self.options.verify_blocks,
                    progress_hook=_delta_hook(progress),
                    content_settings=ContentSettings(content_type=_content_type(key)),
                )
            except (ResourceExistsError, ResourceModifiedError):
                if if_absent:
                    return None
                raise
            if reader.size != size:
                raise StorageError(f"{key} changed size while it was uploaded to {self.location}; upload it again.")
            sha256 = reader.sha256.hexdigest()
            # Record the digest on exactly the blob just committed (etag), for every later reader.
            blob.set_blob_metadata(
                {_SHA256: sha256}, etag=response["etag"], match_condition=MatchConditions.IfNotModified
            )
        return TransferResult(key, size, sha256)

    # ---- downloads -------------------------------------------------------------------------------
    def _download_to(self, key: str, path: Path, progress: ProgressCallback | None) -> TransferResult:
        """Download into a temporary sibling, check the recorded digest, then rename into place."""
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            with self._seam("read", key):
                downloader = self._blob(key).download_blob(
                    max_concurrency=self.options.max_concurrency, progress_hook=_delta_hook(progress)
                )
                with open(partial, "wb") as out:
                    downloader.readinto(out)
            properties = downloader.properties
            recorded_sha = (properties.metadata or {}).get(_SHA256)
            recorded_md5 = None if recorded_sha else properties.content_settings.content_md5
            sha256, md5, size = hashlib.sha256(), hashlib.md5() if recorded_md5 else None, 0
            with open(partial, "rb") as handle:
                while chunk := handle.read(_MiB):
                    sha256.update(chunk)
                    if md5:
                        md5.update(chunk)
                    size += len(chunk)
            where = f"downloaded from {self.location}"
            if recorded_sha:
                _check(key, "SHA-256", recorded_sha, sha256.hexdigest(), where)
            elif md5 and recorded_md5:  # written by another tool: its MD5 is what there is
                _check(key, "MD5", bytes(recorded_md5), md5.digest(), where)
            os.replace(partial, path)
            return TransferResult(key, size, sha256.hexdigest())
        finally:
            partial.unlink(missing_ok=True)


class _Unreachable(StorageError):
    """The endpoint did not answer (refused, reset or timed out) after the allowed attempts."""


@dataclass(frozen=True)
class _Tried:
    attempts: int
    seconds: float


_TRIED = "sparkjobs_tried"  # the attribute on a final network error that says what was tried


class _BoundedRetry(LinearRetry):
    """The SDK's linear retry, which starts no retry once the operation is ``deadline`` old and
    notes on the final network error how many attempts were made and for how long."""

    def __init__(self, *, deadline: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline = deadline

    def configure_retries(self, request: Any) -> dict[str, Any]:
        settings = super().configure_retries(request)
        settings["started"] = time.monotonic()
        return settings

    def increment(self, settings: dict[str, Any], request: Any, response: Any = None, error: AzureError | None = None) -> bool:
        again = super().increment(settings, request, response, error)
        elapsed = time.monotonic() - settings["started"]
        if again and elapsed < self.deadline:
            return True
        if error is not None:
            setattr(error, _TRIED, _Tried(max(1, len(settings["history"])), elapsed))
        return False


class _HashingReader:
    """A forward-only reader that hashes what it hands out.

    Not seekable on purpose: the SDK then reads the file once, in order, in one thread, and
    sends the blocks in parallel, so hashing costs no second read of the file.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def seekable(self) -> bool:
        return False


def _delta_hook(progress: ProgressCallback | None) -> Callable[[int, int | None], None] | None:
    """The SDK reports bytes done so far; our callbacks take bytes moved since the last call."""
    if progress is None:
        return None
    done = [0]

    def hook(current: int, total: int | None) -> None:
        if current > done[0]:
            progress(current - done[0])
            done[0] = current

    return hook


def _check(key: str, kind: str, expected: bytes | str, actual: bytes | str | None, where: str) -> None:
    """A digest the service has (or computed) must equal ours; None means it has none."""
    if actual is not None and actual != expected:
        raise StorageError(f"{key} {where} has a different {kind} than was sent; transfer it again.")


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def _error_code(exc: AzureError) -> str | None:
    code = getattr(exc, "error_code", None)
    return getattr(code, "value", code)


_REASONS = re.compile(
    r"Connection refused|timed out|Name or service not known|Temporary failure in name resolution|"
    r"nodename nor servname|No route to host|Connection reset|Connection aborted|Remote end closed|SSL|certificate",
    re.IGNORECASE,
)


def _network_reason(exc: AzureError) -> str:
    """A short cause taken from the SDK's message (which itself may not be shown: URLs, SAS)."""
    match = _REASONS.search(str(exc))
    return match.group(0).lower() if match else "connection failed"


def _service_client(location: StorageLocation, creds: StorageCredentials, options: AzureOptions) -> BlobServiceClient:
    """A client whose pool, timeouts and retries suit many parallel transfers and fast failure."""
    session = requests.Session()
    pool = max(10, options.max_workers * max(1, options.max_concurrency))
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=pool, max_retries=Retry(total=False, redirect=False, raise_on_status=False)
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    settings: dict[str, Any] = {
        "transport": RequestsTransport(
            session=session, session_owner=True, connection_timeout=options.connect_timeout,
            read_timeout=options.read_timeout, connection_verify=creds.ca_bundle or True,
        ),
        # The SDK annotates these as int but computes with them as numbers: fractions work.
        "retry_policy": _BoundedRetry(
            deadline=options.operation_timeout,
            backoff=options.retry_backoff,  # type: ignore[arg-type]
            random_jitter_range=options.retry_backoff / 2,  # type: ignore[arg-type]
            retry_total=options.retries,
        ),
        "max_single_put_size": options.block_size,
        "max_block_size": options.block_size,
        "max_single_get_size": options.block_size * 4,
        "max_chunk_get_size": options.block_size,
    }
    if creds.kind is CredentialKind.CONNECTION_STRING:
        return BlobServiceClient.from_connection_string(creds.secret or "", **settings)
    credential: Any
    if creds.kind is CredentialKind.ACCOUNT_KEY:
        credential = {"account_name": location.account, "account_key": creds.secret}
    elif creds.kind is CredentialKind.SAS:
        from azure.core.credentials import AzureSasCredential

        credential = AzureSasCredential(creds.secret or "")
    else:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise StorageError(
                f"Signing in to storage account {location.account} with Azure AD needs azure-identity: {IDENTITY_HINT}."
            ) from None
        credential = DefaultAzureCredential()
    return BlobServiceClient(location.blob_account_url, credential=credential, **settings)
