"""A Livy-protocol test server that runs batches with real spark-submit (see server.py)."""

from .clock import CompressedClock, wait_until
from .server import PAYLOADS, LivyTestServer

__all__ = ["LivyTestServer", "PAYLOADS", "CompressedClock", "wait_until"]
