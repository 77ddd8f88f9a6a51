"""A run store in an Azure Blob container (or Azurite, its emulator), over azure-storage-blob.

Every key lives under the location's prefix in one container. Why it is built this way:

* The SDK is imported only when first needed (``azure_sdk.py``): existence checks, puts of up
  to ``block_size`` and creating the container are one signed request each of our own
  (``blob_rest.py``), which is all a submission of an unchanged project does in storage;
  importing the SDK alone cost ~0.2 s of CPU there (issue 9). Azure AD sign-in always uses the SDK.

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

import base64
import hashlib
import mimetypes
import os
import secrets
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import requests
from urllib3.util.retry import Retry

from ..credentials import CredentialKind, StorageCredentials, parse_connection_string
from ..errors import ArtifactTransferError, ConfigError, StorageError
from .blob_rest import BlobRest, RestStatusError, RestUnreachable, network_reason, signer_for
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
        signer = signer_for(location.account, location.blob_account_url, credentials)
        # The endpoint as reached, without any query string (a SAS would be there).
        self.endpoint = signer.endpoint if signer else location.blob_account_url
        self._rest_session: requests.Session | None = None
        # The calls of a submission (exists, small puts, the container) go as signed requests of
        # our own; the SDK is loaded for the rest (and for Azure AD, which only it can sign for).
        self._rest: BlobRest | None = None
        if signer is not None:
            self._rest_session = pooled_session(self.options)
            options = self.options
            self._rest = BlobRest(
                signer, location.container, self._rest_session, verify=credentials.ca_bundle or True,
                connect_timeout=options.connect_timeout, read_timeout=options.read_timeout, retries=options.retries,
                backoff=options.retry_backoff, deadline=options.operation_timeout,
            )
        self._service_client: Any = None
        self._container_client: Any = None
        self._sdk_lock = threading.Lock()
        self._ready = False  # this store may write without creating the container
        if self._rest is None:  # only the SDK can sign for these credentials: a missing extra is said now
            _ = self._container

    @property
    def _container(self) -> Any:
        """The SDK's client for the container, made (and the SDK imported) on first use."""
        if self._container_client is None:
            with self._sdk_lock:
                if self._container_client is None:
                    service = _sdk().service_client(self._where, self._creds, self.options)
                    self._service_client = service
                    self._container_client = service.get_container_client(self._where.container)
        return self._container_client

    def close(self) -> None:
        if self._service_client is not None:
            self._service_client.close()
        if self._rest_session is not None:
            self._rest_session.close()

    # ---- the one seam where Azure exceptions become ours -------------------------------------
    @contextmanager
    def _seam(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except (RestStatusError, RestUnreachable) as exc:
            raise self._translate_rest(exc, action, key) from None  # its cause holds no more than it says
        except Exception as exc:
            errors = sys.modules.get("azure.core.exceptions")  # no SDK loaded: not an SDK error
            if errors is None or not isinstance(exc, errors.AzureError):
                raise
            raise self._translate(exc, action, key) from exc

    def _where_text(self) -> str:
        return f"container {self._where.container!r} of storage account {self._where.account!r} at {self.endpoint}"

    def _translate(self, exc: Any, action: str, key: str | None) -> Exception:
        sdk = _sdk()
        if isinstance(exc, (sdk.ServiceRequestError, sdk.ServiceResponseError)):
            reason = network_reason(exc)
            return self._unreachable(reason, isinstance(exc, sdk.ServiceRequestError), getattr(exc, _TRIED, None))
        status = getattr(exc, "status_code", None)
        if isinstance(exc, sdk.ResourceNotFoundError) and action == "read":
            return FileNotFoundError(key)
        refused = isinstance(exc, sdk.ClientAuthenticationError) or status in (401, 403)
        if not refused and not isinstance(exc, sdk.HttpResponseError):
            return StorageError(f"Could not {_what(action, key)} in {self._where_text()} ({type(exc).__name__}).")
        return self._refusal(status, _error_code(exc), action, key, refused)

    def _translate_rest(self, exc: RestStatusError | RestUnreachable, action: str, key: str | None) -> Exception:
        if isinstance(exc, RestUnreachable):
            return self._unreachable(exc.reason, exc.connecting, _Tried(exc.attempts, exc.seconds))
        if exc.status == 404 and action == "read":  # no such blob, or no container yet: nothing stored
            return FileNotFoundError(key)
        return self._refusal(exc.status, exc.code, action, key, exc.status in (401, 403))

    def _refusal(self, status: int | None, code: str | None, action: str, key: str | None, refused: bool) -> Exception:
        where = self._where_text()
        if code == "ContainerNotFound":
            return StorageError(f"There is no {where}, and these credentials could not create it.")
        if refused:
            refused_to = f"create {where}" if action == _CREATE else f"{_what(action, key)} in {where}"
            return StorageError(
                f"Azure Blob storage refused to {refused_to} ({code or status}); check the "
                f"{self._creds.kind.value} from {self._creds.source or 'the credentials'}."
            )
        return StorageError(f"Could not {_what(action, key)} in {where}: HTTP {status} {code or ''}".rstrip() + ".")

    def _unreachable(self, reason: str, connecting: bool, tried: _Tried | None) -> Exception:
        where = self._where_text()
        if reason in ("ssl", "certificate"):
            return _Unreachable(
                f"Cannot reach {where}: its TLS certificate could not be verified"
                f"{' against ' + self._creds.ca_bundle if self._creds.ca_bundle else ''}. If a CA of your own "
                f"signs it, name that CA's file as 'ca_bundle' under storage.{self._where.account} in the "
                "credentials file."
            )
        return _Unreachable(
            f"Cannot reach {where} ({self._what_was_tried(reason, connecting, tried)}); check the store URL, the "
            "network, and for Azurite that the emulator is running."
        )

    def _what_was_tried(self, reason: str, connecting: bool, tried: _Tried | None) -> str:
        options = self.options
        if reason == "timed out":
            reason = (
                f"could not connect within {options.connect_timeout:g} s"
                if connecting
                else f"no answer within {options.read_timeout:g} s"
            )
        limits = f"{options.connect_timeout:g} s to connect and {options.read_timeout:g} s per read"
        if tried is None:
            return f"{reason}; allowed {limits}"
        attempts = f"{tried.attempts} attempt{'s' if tried.attempts != 1 else ''} in {tried.seconds:.0f} s"
        return f"{reason}; {attempts}, each allowed {limits}"

    def _blob(self, key: str) -> Any:
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
                    self._create_container()
                except _Forbidden:
                    # A container-scoped SAS may write blobs but not create containers: assume
                    # the container exists (for this store only; its first write will tell).
                    self._ready = True
                    return
            _READY.add(marker)

    def _create_container(self) -> None:
        """Create the container; an existing one is fine. _Forbidden: refused, but not for a
        wrong key (an account key may create anything, so its 403 is a wrong key)."""
        if self._rest is not None:
            try:
                self._rest.create_container()
            except RestStatusError as exc:
                if exc.status != 403 or exc.code == "AuthenticationFailed" or self._signs_with_key():
                    raise
                raise _Forbidden() from None
            return
        sdk = _sdk()
        try:
            self._container.create_container()
        except sdk.ResourceExistsError:
            pass
        except sdk.HttpResponseError as exc:
            if exc.status_code != 403 or _error_code(exc) == "AuthenticationFailed" or self._signs_with_key():
                raise
            raise _Forbidden() from None

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
        if self._rest is not None:
            with self._seam("read", key):
                fetched = self._rest.get(self._where.key(key))
            assert fetched is not None  # unconditional: never a 304
            return self._checked(key, fetched.data, fetched.metadata)
        with self._seam("read", key):
            downloader = self._blob(key).download_blob(max_concurrency=self.options.max_concurrency)
            data = downloader.readall()
        return self._checked(key, data, downloader.properties.metadata or {})

    def _checked(self, key: str, data: bytes, metadata: dict[str, str]) -> bytes:
        """``data``, once its SHA-256 matches the one recorded in the blob's metadata (if any)."""
        recorded = metadata.get(_SHA256)
        if recorded:
            _check(key, "SHA-256", recorded, hashlib.sha256(data).hexdigest(), f"downloaded from {self.location}")
        return data

    def _get_file(self, key: str, path: Path) -> None:
        self._download_to(key, path, None)

    def _list(self, prefix: str) -> Iterator[StoredObject]:
        base = self._where.prefix
        start = "/".join(p for p in (base, prefix) if p)
        strip = len(base) + 1 if base else 0
        if self._rest is not None:
            with self._seam("list", prefix or "/"):
                for item in self._rest.list(f"{start}/" if start else "", metadata=True):
                    if item.metadata.get("hdi_isfolder") == "true" or item.name.endswith("/"):
                        continue
                    yield StoredObject(item.name[strip:], item.size)
            return
        with self._seam("list", prefix or "/"):
            blobs = self._container.list_blobs(name_starts_with=f"{start}/" if start else None, include=["metadata"])
            try:
                for blob in blobs:
                    # Hadoop's wasb driver marks folders with empty hdi_isfolder blobs: not files.
                    if (blob.metadata or {}).get("hdi_isfolder") == "true" or blob.name.endswith("/"):
                        continue
                    yield StoredObject(blob.name[strip:], blob.size)
            except _sdk().ResourceNotFoundError:
                return  # no container yet, so nothing stored

    # ---- change detection for the run index: names per folder, ETags ---------------------------
    cheap_listing = False

    def list_folders(self, prefix: str, start: str = "") -> list[str]:
        """One delimited listing: a name per folder, not every blob inside them."""
        base = "/".join(p for p in (self._where.prefix, check_prefix(prefix)) if p)
        strip = len(base) + 1 if base else 0
        names = []
        if self._rest is not None:
            with self._seam("list", prefix or "/"):
                listed = self._rest.list(f"{base}/{start}" if base else start, delimiter="/")
                names = [item.name[strip:-1] for item in listed if item.folder]
            return sorted(names)
        with self._seam("list", prefix or "/"):
            try:
                for item in self._container.walk_blobs(name_starts_with=f"{base}/{start}" if base else start, delimiter="/"):
                    if item.name.endswith("/"):
                        names.append(item.name[strip:-1])
            except _sdk().ResourceNotFoundError:
                return []  # no container yet
        return sorted(names)

    def stamp(self, key: str) -> str | None:
        with self._seam("read", check_key(key)):
            if self._rest is not None:
                return self._rest.etag(self._where.key(key))
            try:
                return str(self._blob(key).get_blob_properties().etag)
            except _sdk().ResourceNotFoundError:
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
        if self._rest is not None:
            with self._seam("read", key):
                fetched = self._rest.get(self._where.key(key), unless_etag=stamp)
            if fetched is None:
                return None
            return self._checked(key, fetched.data, fetched.metadata), fetched.etag
        sdk = _sdk()
        condition = {"etag": stamp, "match_condition": sdk.MatchConditions.IfModified} if stamp else {}
        with self._seam("read", key):
            try:
                downloader = self._blob(key).download_blob(max_concurrency=self.options.max_concurrency, **condition)
            except sdk.HttpResponseError as exc:
                if exc.status_code == 304:  # the SDK calls it ResourceModifiedError
                    return None
                raise
            data = downloader.readall()
        return self._checked(key, data, downloader.properties.metadata or {}), str(downloader.properties.etag)

    def _exists(self, key: str) -> bool:
        with self._seam("read", key):
            if self._rest is not None:
                return self._rest.exists(self._where.key(key))
            return self._blob(key).exists()

    def _delete(self, key: str) -> None:
        with self._seam("delete", key), suppress(_sdk().ResourceNotFoundError):
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
        small = len(data) <= self.options.block_size
        if small and self._rest is not None:
            # One Put Blob with the MD5 as Content-MD5: the service refuses a body that does not match it.
            headers = {"x-ms-meta-" + _SHA256: sha256, "x-ms-blob-content-type": _content_type(key),
                       "x-ms-blob-content-md5": base64.b64encode(md5).decode()}
            with self._seam("write", key):
                returned = self._rest.put(self._where.key(key), data, headers, if_absent=if_absent)
                if returned is None and if_absent:
                    return None
            _check(key, "MD5", md5, returned, f"after upload to {self.location}")
            return {"content_md5": returned}
        sdk = _sdk()
        with self._seam("write", key):
            try:
                response = self._blob(key).upload_blob(
                    data,
                    length=len(data),
                    overwrite=not if_absent,
                    metadata={_SHA256: sha256},
                    content_settings=sdk.ContentSettings(content_type=_content_type(key), content_md5=bytearray(md5)),
                )
            except (sdk.ResourceExistsError, sdk.ResourceModifiedError):
                if if_absent:
                    return None
                raise
        if small:  # one Put Blob: the service hashed what it got
            returned = response.get("content_md5")
            _check(key, "MD5", md5, bytes(returned) if returned else None, f"after upload to {self.location}")
        return response

    def _put_large(
        self, key: str, handle: BinaryIO, size: int, if_absent: bool, progress: ProgressCallback | None
    ) -> TransferResult | None:
        """Blocks in parallel (the SDK's max_concurrency) from one ordered, hashing read."""
        self._ensure_container()
        sdk = _sdk()
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
                    content_settings=sdk.ContentSettings(content_type=_content_type(key)),
                )
            except (sdk.ResourceExistsError, sdk.ResourceModifiedError):
                if if_absent:
                    return None
                raise
            if reader.size != size:
                raise StorageError(f"{key} changed size while it was uploaded to {self.location}; upload it again.")
            sha256 = reader.sha256.hexdigest()
            # Record the digest on exactly the blob just committed (etag), for every later reader.
            blob.set_blob_metadata(
                {_SHA256: sha256}, etag=response["etag"], match_condition=sdk.MatchConditions.IfNotModified
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


class _Forbidden(Exception):
    """Creating the container was refused to credentials that may still write into it."""


def _what(action: str, key: str | None) -> str:
    return f"{action} {key!r}" if key else action


class _Unreachable(StorageError):
    """The endpoint did not answer (refused, reset or timed out) after the allowed attempts."""


@dataclass(frozen=True)
class _Tried:
    attempts: int
    seconds: float


_TRIED = "sparkjobs_tried"  # the attribute on a final network error that says what was tried


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


def _error_code(exc: Any) -> str | None:
    code = getattr(exc, "error_code", None)
    return getattr(code, "value", code)


def pooled_session(options: AzureOptions) -> requests.Session:
    """A requests session whose pool is as wide as the parallel transfers (requests' default
    of 10 connections would serialise a wider thread pool), with no retries of its own."""
    session = requests.Session()
    pool = max(10, options.max_workers * max(1, options.max_concurrency))
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=pool, max_retries=Retry(total=False, redirect=False, raise_on_status=False)
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _sdk() -> Any:
    """The SDK-backed half of this backend, imported on first use."""
    from . import azure_sdk

    return azure_sdk
