"""A Livy-protocol test server that runs batches with real spark-submit (see server.py)."""
from .server import PAYLOADS, LivyTestServer

__all__ = ["LivyTestServer", "PAYLOADS"]
