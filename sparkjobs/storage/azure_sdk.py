"""The parts of the Azure backend that need azure-storage-blob, imported only when a store first
needs the SDK (listing, reading, large uploads, Azure AD): the few calls of a submission go
through :mod:`sparkjobs.storage.blob_rest` instead, and importing the SDK costs ~0.2 s of CPU."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

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
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ContentSettings, LinearRetry

from ..credentials import IDENTITY_HINT, CredentialKind, StorageCredentials
from ..errors import StorageError
from .uris import StorageLocation

if TYPE_CHECKING:
    from .azure import AzureOptions

__all__ = [
    "AzureError", "BlobClient", "BlobServiceClient", "ClientAuthenticationError", "ContainerClient", "ContentSettings",
    "HttpResponseError", "MatchConditions", "ResourceExistsError", "ResourceModifiedError", "ResourceNotFoundError",
    "ServiceRequestError", "ServiceResponseError", "service_client",
]


from .azure import _TRIED, _Tried, pooled_session  # noqa: E402  (azure.py is loaded before this module)


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


def service_client(location: StorageLocation, creds: StorageCredentials, options: AzureOptions) -> BlobServiceClient:
    """A client whose pool, timeouts and retries suit many parallel transfers and fast failure."""
    session = pooled_session(options)
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
