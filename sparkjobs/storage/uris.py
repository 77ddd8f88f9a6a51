"""The one place that turns a store location into Hadoop URIs and Hadoop credential key names.

A run store is named by a URL. Spark jobs write their outputs through the Hadoop FileSystem,
so the cluster side needs the same place spelled as a Hadoop URI; keeping both spellings
here means the run layout (``runs/<id>/outputs/``, ``shared/<workspace>/<project>/``) and
the URI schemes cannot drift apart between the submitter, the bootstrap and the tests.

Accepted locations::

    /some/folder  or  ~/folder  or  file:///some/folder         a local folder store
    wasbs://CONTAINER@ACCOUNT.blob.core.windows.net/prefix       Azure Blob (also wasb://)
    abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/prefix        the same container (also abfs://)

Which Hadoop driver a cluster has: HDInsight 5.x runs Hadoop 3.3, where the ``wasb[s]://``
driver (hadoop-azure's NativeAzureFileSystem) is the usual one. Hadoop deprecated wasb in
3.4.1 and removes it in 3.5, so newer clusters use ``abfs[s]://`` (the ABFS driver, which
talks to the same storage account through its ``dfs`` endpoint). Both URI forms are
offered for every location; the scheme the user wrote is the default.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError, UnsafePathError
from .base import check_key, check_prefix

__all__ = [
    "StorageLocation",
    "HadoopScheme",
    "parse_location",
    "validate_account",
    "validate_container",
    "account_key_setting",
    "sas_setting",
    "DEFAULT_ENDPOINT_SUFFIX",
]

HadoopScheme = Literal["wasbs", "wasb", "abfss", "abfs"]

DEFAULT_ENDPOINT_SUFFIX = "core.windows.net"

_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
# 3-63 characters; lowercase letters, digits and single hyphens; starts and ends alphanumeric.
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_BLOB_SCHEMES = {"wasb": "blob", "wasbs": "blob", "abfs": "dfs", "abfss": "dfs"}


def validate_account(account: str) -> str:
    """Return ``account`` if it is a valid storage account name, else raise ConfigError."""
    if not _ACCOUNT.match(account or ""):
        raise ConfigError(
            f"{account!r} is not a storage account name: it must be 3-24 lowercase letters and digits."
        )
    return account


def validate_container(container: str) -> str:
    """Return ``container`` if it is a valid blob container name (or ``$root``), else ConfigError."""
    if container == "$root" or _CONTAINER.match(container or ""):
        return container
    raise ConfigError(
        f"{container!r} is not a blob container name: it must be 3-63 lowercase letters, digits and "
        "single hyphens, starting and ending with a letter or digit (or '$root')."
    )


def account_key_setting(account: str, *, dfs: bool = False, endpoint_suffix: str = DEFAULT_ENDPOINT_SUFFIX) -> str:
    """The Hadoop key holding an account key: ``fs.azure.account.key.ACCOUNT.blob.core.windows.net``.

    The ABFS driver looks the key up under the ``dfs`` host instead of ``blob``.
    """
    host = "dfs" if dfs else "blob"
    return f"fs.azure.account.key.{validate_account(account)}.{host}.{endpoint_suffix}"


def sas_setting(account: str, container: str, *, endpoint_suffix: str = DEFAULT_ENDPOINT_SUFFIX) -> str:
    """The Hadoop key holding a container SAS for the wasb driver:
    ``fs.azure.sas.CONTAINER.ACCOUNT.blob.core.windows.net``."""
    return f"fs.azure.sas.{validate_container(container)}.{validate_account(account)}.blob.{endpoint_suffix}"


@dataclass(frozen=True)
class StorageLocation:
    """A parsed store location.

    For Azure, ``prefix`` is the folder inside the container that every key lives under
    (no leading or trailing slash, may be empty). For ``file``, ``account`` and ``container``
    are empty and ``prefix`` is the folder's absolute POSIX path.
    """

    scheme: str  # "file", "wasbs", "wasb", "abfss" or "abfs"
    account: str = ""
    container: str = ""
    prefix: str = ""
    endpoint_suffix: str = DEFAULT_ENDPOINT_SUFFIX

    @classmethod
    def parse(cls, text: str) -> StorageLocation:
        return parse_location(text)

    @classmethod
    def local(cls, folder: Path | str) -> StorageLocation:
        return cls("file", prefix=Path(folder).expanduser().absolute().as_posix())

    # ---- facts -----------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    @property
    def local_path(self) -> Path:
        if not self.is_local:
            raise ValueError(f"{self} is not a local folder.")
        return Path(self.prefix)

    @property
    def blob_account_url(self) -> str:
        """The HTTPS endpoint of the account's Blob service, e.g. https://acct.blob.core.windows.net."""
        self._require_azure()
        return f"https://{self.account}.blob.{self.endpoint_suffix}"

    def key(self, relative: str) -> str:
        """A store key under this location's prefix, as a blob name (Azure) or a POSIX path."""
        check_key(relative)
        return f"{self.prefix}/{relative}" if self.prefix else relative

    # ---- Hadoop URIs ------------------------------------------------------------------------
    def uri(self, path: str = "", *, scheme: HadoopScheme | None = None, folder: bool = True) -> str:
        """The Hadoop URI of ``path`` (a store key or key prefix) in this location.

        ``scheme`` chooses the Hadoop driver for Azure locations (default: the one the location
        was written with). Folders end with ``/`` so scripts may append file names.
        """
        path = check_prefix(path)
        end = "/" if folder else ""
        if self.is_local:
            if scheme is not None:
                raise ValueError(f"A local folder store has only file:// URIs, not {scheme}://.")
            full = PurePosixPath(self.prefix, path) if path else PurePosixPath(self.prefix)
            return full.as_uri().rstrip("/") + end
        chosen = scheme or self.scheme
        if chosen not in _BLOB_SCHEMES:
            raise ValueError(f"{chosen!r} is not a Hadoop scheme for Azure storage.")
        inside = "/".join(p for p in (self.prefix, path) if p)
        host = f"{self.account}.{_BLOB_SCHEMES[chosen]}.{self.endpoint_suffix}"
        return f"{chosen}://{self.container}@{host}/{inside}{end if inside else ''}"

    def outputs_uri(self, run_id: str, *, scheme: HadoopScheme | None = None) -> str:
        """``<location>/runs/<id>/outputs/``: where a cluster run writes its artifacts."""
        _single_part("run id", run_id)
        return self.uri(f"runs/{run_id}/outputs", scheme=scheme)

    def shared_uri(self, workspace: str, project: str, *, scheme: HadoopScheme | None = None) -> str:
        """``<location>/shared/<workspace>/<project>/``: the folder runs of one project share."""
        _single_part("workspace", workspace)
        _single_part("project", project)
        return self.uri(f"shared/{workspace}/{project}", scheme=scheme)

    # ---- Hadoop credential key names -------------------------------------------------------
    def account_key_setting(self, *, dfs: bool | None = None) -> str:
        self._require_azure()
        use_dfs = self.scheme in ("abfs", "abfss") if dfs is None else dfs
        return account_key_setting(self.account, dfs=use_dfs, endpoint_suffix=self.endpoint_suffix)

    def sas_setting(self) -> str:
        self._require_azure()
        return sas_setting(self.account, self.container, endpoint_suffix=self.endpoint_suffix)

    def _require_azure(self) -> None:
        if self.is_local:
            raise ValueError(f"{self} is a local folder, not an Azure storage location.")

    def __str__(self) -> str:
        if self.is_local:
            return self.prefix
        return self.uri(folder=False)


def _single_part(what: str, value: str) -> None:
    try:
        check_key(value)
    except UnsafePathError:
        raise ConfigError(f"{value!r} is not a valid {what}.") from None
    if "/" in value:
        raise ConfigError(f"{value!r} is not a valid {what}: it may not contain '/'.")


def parse_location(text: str) -> StorageLocation:
    """Parse a store location; every malformed form gets a ConfigError saying what to write."""
    text = (text or "").strip()
    if not text:
        raise ConfigError("The store location is empty; give a folder or a wasbs:// URL.")
    if "://" not in text and not text.startswith("file:"):
        return StorageLocation.local(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment or not parts.path:
            raise ConfigError(f"{text!r} is not a local file URL; write file:///absolute/folder.")
        return StorageLocation.local(unquote(parts.path))
    if scheme not in _BLOB_SCHEMES:
        raise ConfigError(
            f"Unsupported store location {text!r}: use a folder, file:///folder, "
            "wasbs://CONTAINER@ACCOUNT.blob.core.windows.net/prefix or abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/prefix."
        )
    return _parse_azure(text, scheme, parts.netloc, parts.path, parts.query or parts.fragment)


def _parse_azure(text: str, scheme: str, netloc: str, path: str, extra: str) -> StorageLocation:
    kind = _BLOB_SCHEMES[scheme]
    example = f"{scheme}://CONTAINER@ACCOUNT.{kind}.core.windows.net/prefix"
    if extra:
        raise ConfigError(f"{_shown(text)} may not carry a query or fragment (put SAS tokens in the credentials file).")
    if "@" not in netloc:
        raise ConfigError(f"{text!r} names no container; write {example}.")
    container, _, host = netloc.rpartition("@")
    if ":" in container:
        raise ConfigError(f"{_shown(text)} carries a user or secret; put secrets in the credentials file, not the URL.")
    account, dot, rest = host.lower().partition(".")
    if not dot or not rest.startswith(f"{kind}.") or len(rest) <= len(kind) + 1:
        raise ConfigError(f"{text!r} has host {host!r}; for {scheme}:// it must be ACCOUNT.{kind}.core.windows.net ({example}).")
    suffix = rest[len(kind) + 1 :]
    if ":" in suffix or not re.match(r"^[a-z0-9.-]+$", suffix):
        raise ConfigError(f"{text!r} has an invalid endpoint suffix {suffix!r}.")
    validate_account(account)
    validate_container(container)
    prefix = unquote(path).strip("/")
    if prefix:
        try:
            check_prefix(prefix)
        except UnsafePathError:
            raise ConfigError(f"{text!r} has the prefix {prefix!r}, which may not contain '..', '.' or '//'.") from None
    return StorageLocation(scheme, account, container, prefix, suffix)


def _shown(text: str) -> str:
    """The location without anything after '?' or '#', nor a user part: those may hold secrets."""
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    return f"'{parts.scheme}://...@{host}{parts.path}'"
