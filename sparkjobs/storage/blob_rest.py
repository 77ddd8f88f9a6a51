"""The Blob calls a run and the run history make most often, each one signed HTTP request,
without loading azure-storage-blob: does a blob exist, its ETag, put a small blob, get one
(optionally only if its ETag changed), list names (optionally by folder), create the container.

Why hand-written: importing the SDK costs about 0.2 s of CPU, and a submission of an unchanged
project (issue 9: 0.5 s from command to Livy's 201) or a ``runs list`` of a warm index (issue 10:
0.3 s) needs only these calls. Everything else (large uploads and downloads, Azure AD sign-in)
stays with the SDK, which :mod:`sparkjobs.storage.azure` loads when one of those is first used. The signing is the
documented Shared Key scheme (https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key),
or a SAS appended to the query; it is checked against real Azurite by tests/test_storage_azure.py.

Secrets: the key only ever feeds the HMAC; no URL (a SAS is in its query) and no header goes
into an error. Errors carry the status and the service's error code, or the network reason
and what was tried; :class:`~sparkjobs.storage.azure.AzureBlobStore` turns them into sentences.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3

from ..credentials import CredentialKind, StorageCredentials, parse_connection_string

__all__ = ["BlobRest", "Fetched", "Listed", "RestStatusError", "RestUnreachable", "network_reason", "signer_for"]

API_VERSION = "2021-12-02"  # a version every Azure region and Azurite 3.x accept


class RestStatusError(Exception):
    """The service answered with an error status (``code``: its x-ms-error-code, if any)."""

    def __init__(self, status: int, code: str | None) -> None:
        super().__init__(f"HTTP {status} {code or ''}".rstrip())
        self.status = status
        self.code = code


class RestUnreachable(Exception):
    """No answer after the allowed attempts; ``reason`` is short and holds no URL."""

    def __init__(self, reason: str, connecting: bool, attempts: int, seconds: float) -> None:
        super().__init__(reason)
        self.reason, self.connecting, self.attempts, self.seconds = reason, connecting, attempts, seconds


@dataclass(frozen=True)
class _Signer:
    endpoint: str  # the service URL as reached, no query and no trailing slash
    account: str  # the name the Shared Key signature is made for
    key: bytes | None = None  # the decoded account key, or
    sas: str | None = None  # a SAS query string (no leading '?')

    def __repr__(self) -> str:  # never the key or the SAS
        return f"_Signer({self.endpoint!r}, {self.account!r})"


def signer_for(endpoint_account: str, account_url: str, creds: StorageCredentials) -> _Signer | None:
    """How to sign for ``creds``; None when only the SDK can (Azure AD sign-in)."""
    if creds.kind is CredentialKind.ACCOUNT_KEY:
        return _Signer(account_url, endpoint_account, key=base64.b64decode(creds.secret or ""))
    if creds.kind is CredentialKind.SAS:
        return _Signer(account_url, endpoint_account, sas=creds.secret)
    if creds.kind is CredentialKind.CONNECTION_STRING:
        parts = parse_connection_string(creds.secret or "")
        account = parts.get("accountname") or endpoint_account
        endpoint = parts.get("blobendpoint")
        if not endpoint:
            protocol = parts.get("defaultendpointsprotocol") or "https"
            endpoint = f"{protocol}://{account}.blob.{parts.get('endpointsuffix') or 'core.windows.net'}"
        endpoint = endpoint.split("?", 1)[0].rstrip("/")
        if parts.get("accountkey"):
            return _Signer(endpoint, account, key=base64.b64decode(parts["accountkey"]))
        if parts.get("sharedaccesssignature"):
            return _Signer(endpoint, account, sas=parts["sharedaccesssignature"].lstrip("?"))
    return None


@dataclass(frozen=True)
class Listed:
    """One name from a listing: a blob (with its size and metadata) or, with a delimiter, a folder."""

    name: str
    size: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    folder: bool = False


@dataclass(frozen=True)
class Fetched:
    """A blob's bytes, its ETag and its metadata (the ``x-ms-meta-*`` headers)."""

    data: bytes
    etag: str
    metadata: dict[str, str]


_SIGNED_HEADERS = ("content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
                   "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range")


class BlobRest:
    """Signed requests to one container, with the store's timeouts and bounded retries."""

    def __init__(self, signer: _Signer, container: str, session: requests.Session, *, verify: str | bool,
                 connect_timeout: float, read_timeout: float, retries: int, backoff: float, deadline: float) -> None:
        self._signer, self._container, self._session, self._verify = signer, container, session, verify
        self._timeout = (connect_timeout, read_timeout)
        self._retries, self._backoff, self._deadline = retries, backoff, deadline

    def exists(self, name: str) -> bool:
        status, _ = self._call("HEAD", name, {}, b"", (200, 404))
        return status == 200

    def put(self, name: str, data: bytes, headers: dict[str, str], *, if_absent: bool) -> bytes | None:
        """Put Blob; the Content-MD5 the service returns, or None when if_absent found the name taken."""
        md5 = hashlib.md5(data).digest()
        sent = {"x-ms-blob-type": "BlockBlob", "content-md5": base64.b64encode(md5).decode(), **headers}
        if if_absent:
            sent["if-none-match"] = "*"
        status, answer = self._call("PUT", name, sent, data, (201, 409, 412) if if_absent else (201,))
        if status != 201:
            return None
        returned = answer.headers.get("Content-MD5")
        return base64.b64decode(returned) if returned else None

    def etag(self, name: str) -> str | None:
        """The blob's ETag, or None when there is no such blob."""
        status, answer = self._call("HEAD", name, {}, b"", (200, 404))
        return answer.headers.get("ETag") if status == 200 else None

    def get(self, name: str, *, unless_etag: str | None = None) -> Fetched | None:
        """The whole blob in one GET; None when ``unless_etag`` still names it (304). A missing
        blob raises :class:`RestStatusError` 404, as every other refusal does."""
        headers = {"if-none-match": unless_etag} if unless_etag else {}
        status, answer = self._call("GET", name, headers, b"", (200, 304))
        if status == 304:
            return None
        return Fetched(answer.content, answer.headers.get("ETag", ""), _metadata(answer.headers))

    def list(self, prefix: str, *, delimiter: str | None = None, metadata: bool = False) -> Iterator[Listed]:
        """Every name under ``prefix``, page by page (the service's order: by name). With a
        delimiter, what lies deeper is one folder name ending with it. A missing container lists nothing."""
        query = {"restype": "container", "comp": "list"}
        if prefix:
            query["prefix"] = prefix
        if delimiter:
            query["delimiter"] = delimiter
        if metadata:
            query["include"] = "metadata"
        marker = ""
        while True:
            paged = {**query, "marker": marker} if marker else query
            status, answer = self._call("GET", None, {}, b"", (200, 404), query=paged)
            if status == 404:
                if answer.headers.get("x-ms-error-code") == "ContainerNotFound":
                    return
                raise RestStatusError(404, answer.headers.get("x-ms-error-code"))
            page = ElementTree.fromstring(answer.content)
            yield from _listed(page)
            marker = page.findtext("NextMarker") or ""
            if not marker:
                return

    def create_container(self) -> bool:
        """True if created, False if it was there already."""
        status, _ = self._call("PUT", None, {}, b"", (201, 409), query={"restype": "container"})
        return status == 201

    # ---- one request, signed, retried when the network failed or the service was busy ---------
    def _call(self, method: str, name: str | None, headers: dict[str, str], body: bytes, ok: tuple[int, ...],
              query: dict[str, str] | None = None) -> tuple[int, requests.Response]:
        path = "/" + quote(self._container + (f"/{name}" if name else ""), safe="/~")
        started, attempts = time.monotonic(), 0
        while True:
            attempts += 1
            try:
                answer = self._send(method, path, headers, body, query or {})
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                # The session's adapter retries nothing, so urllib3's own errors come through unwrapped.
                answer, failure = None, exc
            else:
                failure = None
                if answer.status_code in ok:
                    return answer.status_code, answer
            retry = failure is not None or (answer is not None and answer.status_code in (408, 500, 502, 503, 504))
            if not retry or attempts > self._retries or time.monotonic() - started >= self._deadline:
                break
            time.sleep(self._backoff * attempts)
        if failure is not None:
            connecting = isinstance(failure, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)) or (
                isinstance(failure, requests.ConnectionError) and not isinstance(failure, requests.ReadTimeout))
            raise RestUnreachable(network_reason(failure), connecting, attempts, time.monotonic() - started) from None
        assert answer is not None
        raise RestStatusError(answer.status_code, answer.headers.get("x-ms-error-code"))

    def _send(self, method: str, path: str, headers: dict[str, str], body: bytes,
              query: dict[str, str]) -> requests.Response:
        signer = self._signer
        sent = {**headers, "x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION}
        if body or method == "PUT":
            sent["content-length"] = str(len(body))
        url = signer.endpoint + path
        params = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(query.items()))
        if signer.key is not None:
            signed_path = urlsplit(signer.endpoint).path + path  # path-style endpoints (Azurite) name the account
            sent["authorization"] = f"SharedKey {signer.account}:{_signature(signer, method, signed_path, sent, query)}"
        if signer.sas:
            params = "&".join(p for p in (params, signer.sas) if p)
        return self._session.request(method, url + (f"?{params}" if params else ""), headers=sent, data=body or None,
                                     timeout=self._timeout, verify=self._verify, allow_redirects=False)


def _metadata(headers: Any) -> dict[str, str]:
    return {k[len("x-ms-meta-"):].lower(): v for k, v in headers.items() if k.lower().startswith("x-ms-meta-")}


def _listed(page: ElementTree.Element) -> Iterator[Listed]:
    blobs = page.find("Blobs")
    for item in blobs if blobs is not None else ():
        if item.tag == "BlobPrefix":
            yield Listed(item.findtext("Name") or "", folder=True)
        elif item.tag == "Blob":
            size = item.findtext("Properties/Content-Length") or "0"
            found = item.find("Metadata")
            meta = {child.tag.lower(): child.text or "" for child in found} if found is not None else {}
            yield Listed(item.findtext("Name") or "", int(size), meta)


def _signature(signer: _Signer, method: str, path: str, headers: dict[str, str], query: dict[str, str]) -> str:
    lower = {k.lower(): v for k, v in headers.items()}
    standard = [lower.get(h, "") for h in _SIGNED_HEADERS]
    if standard[2] == "0":
        standard[2] = ""  # since version 2015-02-21 a zero length is signed as empty
    ms = "".join(f"{k}:{v}\n" for k, v in sorted(lower.items()) if k.startswith("x-ms-"))
    resource = "/" + signer.account + path.split("?", 1)[0] + "".join(f"\n{k.lower()}:{v}" for k, v in sorted(query.items()))
    text = "\n".join([method, *standard]) + "\n" + ms + resource
    assert signer.key is not None
    return base64.b64encode(hmac.new(signer.key, text.encode("utf-8"), hashlib.sha256).digest()).decode()


_REASONS = re.compile(
    r"Connection refused|timed out|Name or service not known|Temporary failure in name resolution|"
    r"nodename nor servname|No route to host|Connection reset|Connection aborted|Remote end closed|SSL|certificate",
    re.IGNORECASE,
)


def network_reason(exc: Exception) -> str:
    """A short cause from the exception's text (which is not shown: it holds the URL)."""
    match = _REASONS.search(str(exc))
    return match.group(0).lower() if match else "connection failed"
