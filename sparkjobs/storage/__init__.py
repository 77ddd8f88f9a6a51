"""Run stores: a local folder (default) and Azure Blob, behind one Store interface."""
from .base import Store, StoredObject, TransferResult
from .local import LocalStore

__all__ = ["Store", "StoredObject", "TransferResult", "LocalStore"]
