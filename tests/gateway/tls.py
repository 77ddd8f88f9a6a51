"""A certificate authority made at test time, and the gateway's certificate from it.

``trustme`` makes a throwaway CA and a server certificate for 127.0.0.1 and localhost. The
client trusts the CA through sparkjobs' ``verify: <CA bundle path>`` compute key, so TLS
verification stays on in every test, as it is against HDInsight.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["TlsFiles", "make_tls"]


@dataclass(frozen=True)
class TlsFiles:
    """The CA bundle a client trusts, and the gateway's certificate chain and key."""

    ca: Path
    cert_chain: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_chain, self.key)
        return context


def make_tls(folder: Path) -> TlsFiles:
    """Write a new CA and a certificate for 127.0.0.1 and localhost into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="sparkjobs tests")
    server = authority.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(folder / "ca.pem", folder / "gateway-chain.pem", folder / "gateway-key.pem")
    authority.cert_pem.write_to_path(str(files.ca))
    with open(files.cert_chain, "wb") as chain:
        for blob in server.cert_chain_pems:
            chain.write(blob.bytes())
    server.private_key_pem.write_to_path(str(files.key))
    files.key.chmod(0o600)
    return files
