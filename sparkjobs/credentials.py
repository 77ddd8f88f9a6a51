"""Secrets for storage and Livy: found at the edge, carried in objects that never print them.

Why this shape: a storage key must reach the run store and the Spark driver, but must never
reach a log, a printed command, a run record, a snapshot or Livy's request log. So:

* Resolution happens once, at the edge, from an explicit ``environ`` mapping and a credentials
  file that lives *outside* the project (a file inside it would be snapshotted and shipped).
* ``StorageCredentials`` shows ``***`` in ``repr``/``str``; the secret is only read by the
  store backend and by :func:`hadoop_conf_for`.
* None of the variables in :data:`CREDENTIAL_VARIABLES` reaches a job (:func:`without_credentials`),
  and :func:`known_secrets` is every secret value sparkjobs can find, so that whatever a run
  prints or stores is masked with :func:`redact` (every encoded form too, see ``masking.py``),
  even what a job printed from a copy kept under another name.

Storage credentials, first match wins, for the account named in the store location:

1. a connection string: ``AZURE_STORAGE_CONNECTION_STRING``, then the file's ``connection_string``
2. an account key: ``AZURE_STORAGE_KEY``, then the file's ``key``
3. a SAS token: ``AZURE_STORAGE_SAS_TOKEN``, then the file's ``sas``
4. Azure AD through ``DefaultAzureCredential`` (the ``[identity]`` extra)

``AZURE_STORAGE_KEY`` and ``AZURE_STORAGE_SAS_TOKEN`` apply to the account named by
``AZURE_STORAGE_ACCOUNT`` when that is set (as with the Azure CLI); a connection string
applies to the account it names. The file is ``$SPARKJOBS_CREDENTIALS``, else
``$SPARKJOBS_HOME/credentials.yaml`` (``SPARKJOBS_HOME`` defaults to ``~/.sparkjobs``)::

    storage:
      myaccount: {key: ..., sas: ..., connection_string: ...}   # any one of them
      # optional, with any of them: a CA file that signs the endpoint's TLS certificate
      # (Azure Stack, an HTTPS emulator, an inspecting proxy); verification is never turned off
      myaccount2: {connection_string: ..., ca_bundle: /path/to/ca.pem}
    livy:
      https://mycluster.azurehdinsight.net/livy: {password: ...}  # or just: mycluster
"""
from __future__ import annotations

import enum
import functools
import importlib.util
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from .errors import ConfigError
from .masking import MIN_SECRET_LENGTH, redact, secret_forms
from .storage.uris import StorageLocation, parse_location

__all__ = [
    "CREDENTIAL_VARIABLES",
    "CredentialKind",
    "StorageCredentials",
    "resolve_storage_credentials",
    "resolve_account_credentials",
    "livy_password",
    "credentials_file_path",
    "hadoop_conf_for",
    "parse_connection_string",
    "redact",
    "secret_forms",
    "known_secrets",
    "without_credentials",
    "driver_credentials",
    "IDENTITY_HINT",
]

log = logging.getLogger(__name__)

IDENTITY_HINT = "pip install 'sparkjobs[identity]'"
ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_KEY = "AZURE_STORAGE_KEY"
ENV_SAS = "AZURE_STORAGE_SAS_TOKEN"
ENV_LIVY_PASSWORD = "SPARKJOBS_LIVY_PASSWORD"
ENV_CREDENTIALS_FILE = "SPARKJOBS_CREDENTIALS"
#: Every variable sparkjobs reads a secret (or the secrets file's path) from. None of them is
#: passed on to a job: a job that prints its environment must not print sparkjobs' keys.
CREDENTIAL_VARIABLES: tuple[str, ...] = (
    ENV_CONNECTION_STRING, ENV_KEY, ENV_SAS, ENV_LIVY_PASSWORD, ENV_CREDENTIALS_FILE,
)
_SECRET_FIELDS = ("key", "sas", "connection_string")
_STORAGE_FIELDS = {*_SECRET_FIELDS, "ca_bundle"}
_LIVY_FIELDS = {"password"}
_WARNED: set[tuple[Path, int]] = set()
_WARNED_SHORT: set[str] = set()


class CredentialKind(str, enum.Enum):
    CONNECTION_STRING = "connection_string"
    ACCOUNT_KEY = "account_key"
    SAS = "sas"
    IDENTITY = "identity"


@dataclass(frozen=True)
class StorageCredentials:
    """How to sign in to one storage account. ``secret`` is never shown by repr or str.

    ``source`` says where the secret came from (an environment variable's name or the
    credentials file's path), so error messages can point there without showing the value.
    ``ca_bundle`` is a CA file to verify the endpoint's TLS certificate with, instead of the
    system's CAs (None: the system's); it is not a secret.
    """

    account: str
    kind: CredentialKind
    secret: str | None = field(default=None, repr=False)
    source: str = ""
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        if self.kind is not CredentialKind.IDENTITY and not self.secret:
            raise ConfigError(f"The {self.kind.value} for storage account {self.account} ({self.source}) is empty.")
        if self.kind is CredentialKind.SAS:
            object.__setattr__(self, "secret", self.secret.lstrip("?"))  # type: ignore[union-attr]

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every value to mask in printed text: the secret and the secret parts inside it."""
        return _secret_parts(self.kind, self.secret) if self.secret else ()

    @property
    def blob_endpoint(self) -> str | None:
        """The Blob endpoint a connection string names (``BlobEndpoint=``, e.g. Azurite's), if any."""
        if self.kind is not CredentialKind.CONNECTION_STRING or not self.secret:
            return None
        parts = parse_connection_string(self.secret)
        endpoint = parts.get("blobendpoint")
        if endpoint:
            split = urlsplit(endpoint)
            return f"{split.scheme}://{split.netloc}{split.path}".rstrip("/")
        return None

    def __repr__(self) -> str:
        shown = "***" if self.secret else None
        return (
            f"StorageCredentials(account={self.account!r}, kind={self.kind.value!r}, "
            f"secret={shown!r}, source={self.source!r}"
            + (f", ca_bundle={self.ca_bundle!r})" if self.ca_bundle else ")")
        )

    __str__ = __repr__


def _secret_parts(kind: CredentialKind, secret: str) -> tuple[str, ...]:
    """The secret, the key or SAS inside a connection string, and a SAS's signature (encoded
    and decoded: a URL carries one, an SDK's log the other)."""
    values = [secret]
    sas = secret.lstrip("?") if kind is CredentialKind.SAS else None
    if kind is CredentialKind.CONNECTION_STRING:
        parts = parse_connection_string(secret)
        values += [parts[k] for k in ("accountkey", "sharedaccesssignature") if parts.get(k)]
        sas = parts.get("sharedaccesssignature")
    if sas:
        values.append(sas)
        for item in sas.split("&"):
            name, _, value = item.partition("=")
            if name == "sig" and value:
                values += [value, unquote(value)]
    return tuple(dict.fromkeys(values))


def parse_connection_string(value: str) -> dict[str, str]:
    """``Key=Value;...`` into a dict with lower-cased keys (values keep their ``=`` padding)."""
    parts: dict[str, str] = {}
    for item in value.split(";"):
        name, sep, rest = item.strip().partition("=")
        if sep and name:
            parts[name.strip().lower()] = rest.strip()
    return parts


# ---- the credentials file -----------------------------------------------------------------
def credentials_file_path(environ: Mapping[str, str]) -> Path:
    """``$SPARKJOBS_CREDENTIALS``, else ``$SPARKJOBS_HOME/credentials.yaml`` (home: ~/.sparkjobs)."""
    explicit = environ.get(ENV_CREDENTIALS_FILE)
    if explicit:
        return _expand(explicit, environ)
    home = environ.get("SPARKJOBS_HOME") or "~/.sparkjobs"
    return _expand(home, environ) / "credentials.yaml"


def _expand(path: str, environ: Mapping[str, str]) -> Path:
    if path.startswith("~") and environ.get("HOME"):
        path = environ["HOME"] + path[1:]
    return Path(path).expanduser().absolute()


@dataclass(frozen=True)
class _CredentialsFile:
    path: Path
    storage: Mapping[str, Mapping[str, str]] = field(repr=False)
    livy: Mapping[str, str] = field(repr=False)


def _check_outside_project(path: Path, project_dir: Path | None) -> None:
    """Refuse a credentials file the project's snapshot could pick up, used or not."""
    if project_dir is None:
        return
    project = Path(project_dir).resolve()
    resolved = path.resolve()
    if resolved == project or project in resolved.parents:
        raise ConfigError(
            f"The credentials file {path} is inside the project {project}, where it would be "
            "snapshotted and sent to the cluster; move it to ~/.sparkjobs/credentials.yaml "
            "or point SPARKJOBS_CREDENTIALS outside the project."
        )


def _load_file(environ: Mapping[str, str], project_dir: Path | None) -> _CredentialsFile | None:
    path = credentials_file_path(environ)
    _check_outside_project(path, project_dir)
    if not path.is_file():
        if environ.get(ENV_CREDENTIALS_FILE):
            raise ConfigError(f"SPARKJOBS_CREDENTIALS names {path}, which does not exist.")
        return None
    _warn_if_open(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The credentials file {path} cannot be read ({type(exc).__name__}).") from None
    return _parse_file(path, text)


@functools.lru_cache(maxsize=8)
def _parse_file(path: Path, text: str) -> _CredentialsFile:
    """Parsed once per content: a cluster submission reads the file three times (the storage
    key, the Livy password, the secrets to mask), and pure-Python YAML is slow to start."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as exc:
        # Not str(exc): PyYAML quotes the offending line, which may hold a secret.
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"The credentials file {path} is not valid YAML{where}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"The credentials file {path} cannot be read ({type(exc).__name__}).") from None
    return _validate_file(path, data)


def _warn_if_open(path: Path) -> None:
    """One line on stderr (once per file and mode) when others may read the file."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 and (path, mode) not in _WARNED:
        _WARNED.add((path, mode))
        log.warning("Warning: credentials file %s has mode %04o; run 'chmod 600 %s' so only you can read it.", path, mode, path)


def _validate_file(path: Path, data: Any) -> _CredentialsFile:
    """Check the file's shape, naming every problem (keys only, never values) in one message."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(f"The credentials file {path} must be a mapping with 'storage' and/or 'livy'.")
    for top in sorted(set(data) - {"storage", "livy"}):
        problems.append(f"unknown section {top!r} (expected 'storage' or 'livy')")
    storage = _section(data, "storage", _STORAGE_FIELDS, problems)
    livy = {name: entry["password"] for name, entry in _section(data, "livy", _LIVY_FIELDS, problems).items()
            if "password" in entry}
    if problems:
        raise ConfigError(f"The credentials file {path} has problems: " + "; ".join(problems) + ".")
    return _CredentialsFile(path, storage, livy)


def _section(data: dict, name: str, allowed: set[str], problems: list[str]) -> dict[str, dict[str, str]]:
    section = data.get(name) or {}
    if not isinstance(section, dict):
        problems.append(f"{name} must be a mapping")
        return {}
    result: dict[str, dict[str, str]] = {}
    for entry_name, entry in section.items():
        where = f"{name}.{entry_name}"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a mapping of {', '.join(sorted(allowed))}")
            continue
        unknown = sorted(str(k) for k in entry if k not in allowed)
        if unknown:
            problems.append(f"{where} has unknown keys {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
        bad = sorted(str(k) for k, v in entry.items() if k in allowed and not (isinstance(v, str) and v))
        if bad:
            problems.append(f"{where}: {', '.join(bad)} must be a non-empty string")
        result[str(entry_name)] = {k: v for k, v in entry.items() if k in allowed and isinstance(v, str) and v}
    return result


# ---- resolution at the edge ---------------------------------------------------------------
def resolve_storage_credentials(
    location: str | StorageLocation,
    environ: Mapping[str, str],
    project_dir: Path | None = None,
) -> StorageCredentials | None:
    """The credentials for ``location``; None for a local folder. See the module docstring."""
    where = location if isinstance(location, StorageLocation) else parse_location(location)
    if where.is_local:
        return None
    return resolve_account_credentials(where.account, environ, project_dir)


def resolve_account_credentials(
    account: str,
    environ: Mapping[str, str],
    project_dir: Path | None = None,
) -> StorageCredentials:
    """The credentials for one storage account, whatever the container or scheme."""
    _check_outside_project(credentials_file_path(environ), project_dir)
    loaded: list[_CredentialsFile | None] = []

    def from_file(field_name: str) -> tuple[str, str] | None:
        if not loaded:
            loaded.append(_load_file(environ, project_dir))
        file = loaded[0]
        value = file.storage.get(account, {}).get(field_name) if file else None
        return (value, str(file.path)) if file and value else None

    found = _first_credentials(account, environ, from_file)
    bundle = from_file("ca_bundle")
    if bundle is None:
        return found
    path = _expand(bundle[0], environ)
    if not path.is_file():
        raise ConfigError(f"The CA bundle {path} named in {bundle[1]} (storage.{account}.ca_bundle) is not a file.")
    return replace(found, ca_bundle=str(path))


def _first_credentials(
    account: str, environ: Mapping[str, str], from_file: Callable[[str], tuple[str, str] | None]
) -> StorageCredentials:
    """The first credentials found for ``account``, in the order of the module docstring."""

    scoped = environ.get("AZURE_STORAGE_ACCOUNT") in (None, "", account)
    connection = environ.get(ENV_CONNECTION_STRING)
    if connection:
        named = parse_connection_string(connection).get("accountname", "").lower() or None
        if named in (None, account):
            return StorageCredentials(account, CredentialKind.CONNECTION_STRING, connection, ENV_CONNECTION_STRING)
        log.info("AZURE_STORAGE_CONNECTION_STRING is for account %s, not %s; not using it.", named, account)
    found = from_file("connection_string")
    if found:
        return StorageCredentials(account, CredentialKind.CONNECTION_STRING, *found)
    for env_name, field_name, kind in (
        (ENV_KEY, "key", CredentialKind.ACCOUNT_KEY),
        (ENV_SAS, "sas", CredentialKind.SAS),
    ):
        if scoped and environ.get(env_name):
            return StorageCredentials(account, kind, environ[env_name], env_name)
        found = from_file(field_name)
        if found:
            return StorageCredentials(account, kind, *found)
    if not _identity_available():
        file_path = credentials_file_path(environ)
        raise ConfigError(
            f"No credentials for storage account {account}: set AZURE_STORAGE_CONNECTION_STRING, "
            f"AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, add 'storage: {{{account}: {{key: ...}}}}' to "
            f"{file_path}, or sign in with Azure AD after {IDENTITY_HINT}."
        )
    return StorageCredentials(account, CredentialKind.IDENTITY, None, "DefaultAzureCredential")


def _identity_available() -> bool:
    """Whether azure-identity is installed, without importing it (it is slow to import)."""
    try:
        return importlib.util.find_spec("azure.identity") is not None
    except (ImportError, ValueError):
        return False


def livy_password(
    url_or_name: str,
    environ: Mapping[str, str],
    project_dir: Path | None = None,
) -> str | None:
    """The Livy (cluster login) password: ``SPARKJOBS_LIVY_PASSWORD``, else the file's ``livy`` entry.

    A file entry may be the full Livy URL, the host, or an HDInsight cluster name: for
    ``https://mycluster.azurehdinsight.net/livy`` the entries tried are that URL, then
    ``mycluster.azurehdinsight.net``, then ``mycluster``.
    """
    _check_outside_project(credentials_file_path(environ), project_dir)
    if environ.get(ENV_LIVY_PASSWORD):
        return environ[ENV_LIVY_PASSWORD]
    file = _load_file(environ, project_dir)
    if file is None:
        return None
    entries = {_normalise(name): password for name, password in file.livy.items()}
    for candidate in _livy_candidates(url_or_name):
        if candidate in entries:
            return entries[candidate]
    return None


def _normalise(name: str) -> str:
    return name.strip().rstrip("/").lower()


def _livy_candidates(url_or_name: str) -> list[str]:
    text = _normalise(url_or_name)
    candidates = [text]
    host = urlsplit(text).hostname if "://" in text else text.split("/")[0]
    if host:
        candidates.append(host)
        if host.endswith(".azurehdinsight.net"):
            candidates.append(host.split(".")[0])
    return list(dict.fromkeys(candidates))


# ---- using credentials --------------------------------------------------------------------
def hadoop_conf_for(location: StorageLocation | str, creds: StorageCredentials | None) -> dict[str, str]:
    """The Hadoop settings that let a Spark driver reach ``location`` with ``creds``.

    These are set at run time on the driver's Hadoop configuration, never passed as Spark or
    Livy conf (Livy logs conf; Spark's redaction regex misses these keys). Azure AD
    (identity) gives nothing: the cluster then reaches storage with its own identity.
    """
    where = location if isinstance(location, StorageLocation) else parse_location(location)
    if where.is_local or creds is None or creds.kind is CredentialKind.IDENTITY or not creds.secret:
        return {}
    key: str | None = None
    sas: str | None = None
    if creds.kind is CredentialKind.ACCOUNT_KEY:
        key = creds.secret
    elif creds.kind is CredentialKind.SAS:
        sas = creds.secret
    else:
        parts = parse_connection_string(creds.secret)
        key, sas = parts.get("accountkey") or None, parts.get("sharedaccesssignature") or None
    if key:
        return {where.account_key_setting(): key}
    if sas:
        if where.scheme in ("abfs", "abfss"):
            raise ConfigError(
                f"A SAS token for {where.account} cannot be handed to the abfs driver as a plain setting; "
                "use an account key, or a wasbs:// location."
            )
        return {where.sas_setting(): sas.lstrip("?")}
    return {}


# ---- keeping secrets out of jobs and logs -------------------------------------------------
def without_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without sparkjobs' own credential variables: what a job may inherit."""
    return {name: value for name, value in environ.items() if name not in CREDENTIAL_VARIABLES}


def known_secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every secret value sparkjobs can find for a run: the credential variables and every entry
    of the credentials file, with the key, SAS and signature inside each. Resolved once per run
    and masked in all it prints and stores, whichever name a job found a secret under.

    Secrets shorter than ``MIN_SECRET_LENGTH`` are left out, with a warning: masking them would
    blot out ordinary words all over the log.
    """
    found: list[tuple[str, CredentialKind | None, str]] = []  # (value, kind, where it is)
    for name, kind in ((ENV_CONNECTION_STRING, CredentialKind.CONNECTION_STRING),
                       (ENV_KEY, CredentialKind.ACCOUNT_KEY), (ENV_SAS, CredentialKind.SAS)):
        if environ.get(name):
            found.append((environ[name], kind, name))
    if environ.get(ENV_LIVY_PASSWORD):
        found.append((environ[ENV_LIVY_PASSWORD], None, ENV_LIVY_PASSWORD))
    file = _load_file(environ, None)
    if file is not None:
        kinds = {"key": CredentialKind.ACCOUNT_KEY, "sas": CredentialKind.SAS, "connection_string": CredentialKind.CONNECTION_STRING}
        for account, entry in sorted(file.storage.items()):
            for field_name, value in sorted(entry.items()):
                if field_name not in kinds:
                    continue  # a CA bundle's path is no secret
                found.append((value, kinds[field_name], f"{file.path} (storage.{account}.{field_name})"))
        for cluster, password in sorted(file.livy.items()):
            found.append((password, None, f"{file.path} (livy.{cluster})"))
    secrets: list[str] = []
    for value, kind, where in found:
        if len(value) < MIN_SECRET_LENGTH:
            _warn_once(where, f"Warning: the secret in {where} is shorter than {MIN_SECRET_LENGTH} characters, "
                              "so sparkjobs cannot mask it in what a job prints; use a longer one.")
            continue
        secrets += _secret_parts(kind, value) if kind else [value]
    return tuple(dict.fromkeys(s for s in secrets if len(s) >= MIN_SECRET_LENGTH))


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED_SHORT:
        _WARNED_SHORT.add(key)
        log.warning(message)


def driver_credentials(hadoop: Mapping[str, str], masked: Iterable[str] = ()) -> dict[str, Any]:
    """The bootstrap's credentials file: the Hadoop settings it attaches, and under ``mask`` every
    form of the secrets to mask in the driver log it writes to storage (it cannot import this
    module). Only for the secrets that file may carry: a cluster's file holds its storage keys."""
    return {"hadoop": dict(hadoop), "mask": list(secret_forms([*masked, *hadoop.values()]))}
