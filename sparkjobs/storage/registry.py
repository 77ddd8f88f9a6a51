"""Store location → Store backend, importing each backend only when it is used.

The Azure backend needs azure-storage-blob, an optional extra: a user of local folders only
must be able to run without it, and one who names a wasbs:// store without it installed
gets the command that fixes it rather than an ImportError.
"""
from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from ..credentials import StorageCredentials
from ..errors import ConfigError, StorageError
from .base import Store
from .local import LocalStore
from .uris import StorageLocation, parse_location

__all__ = ["open_store", "AZURE_HINT"]

AZURE_HINT = "pip install 'sparkjobs[azure]'"


def _open_local(location: StorageLocation, credentials: StorageCredentials | None) -> Store:
    return LocalStore(location.local_path)


def _open_azure(location: StorageLocation, credentials: StorageCredentials | None) -> Store:
    try:
        module = importlib.import_module(".azure", __package__)
        # Not imported yet (a submission may never need it), but it must be there.
        if importlib.util.find_spec("azure.storage.blob") is None:
            raise ImportError(name="azure.storage.blob")
    except ImportError as exc:
        if not (exc.name or "").startswith("azure"):
            raise
        raise StorageError(
            f"The store {location} is in Azure Blob storage, which needs azure-storage-blob: {AZURE_HINT}."
        ) from exc
    if credentials is None:
        raise ConfigError(
            f"The store {location} needs credentials for storage account {location.account}; "
            "see 'sparkjobs.credentials.resolve_storage_credentials'."
        )
    return module.AzureBlobStore(location, credentials)


_BACKENDS: dict[str, Callable[[StorageLocation, StorageCredentials | None], Store]] = {
    "file": _open_local,
    "wasbs": _open_azure,
    "wasb": _open_azure,
    "abfss": _open_azure,
    "abfs": _open_azure,
}


def open_store(location: str | StorageLocation, credentials: StorageCredentials | None = None) -> Store:
    """Open the store at ``location``: a folder, a file:// URL, or a wasbs://, wasb://, abfss://
    or abfs:// URL (the abfs forms name the same blob container through its dfs host).

    Every key of an Azure store lives under the URL's path, so one container can hold
    several stores.
    """
    where = location if isinstance(location, StorageLocation) else parse_location(location)
    return _BACKENDS[where.scheme](where, credentials)
