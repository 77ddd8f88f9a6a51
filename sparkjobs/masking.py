"""Masking secrets in text: every form a secret can take in a log is replaced by ``***``.

A job rarely prints a secret only as it is. A key shows up URL-encoded in a query string or a
SAS URL (``/`` as ``%2F``, in either case of hex digits, or kept by ``quote``'s default), with
``\\/`` in some JSON, base64-encoded in an ``Authorization`` header or a config blob, or as hex.

Base64 encodes 3-byte groups, so a secret inside longer encoded text comes out differently for
each of the three offsets at which it can start. For each offset, the characters that encode the
secret's bytes alone are a fixed string; masking those three strings (and the secret's own
encoding) leaves at most the three characters at each edge that mix in neighbouring bytes.

Secrets shorter than ``MIN_SECRET_LENGTH`` are not given base64 or hex forms: a 4-character
fragment would blot out unrelated text all over a log. The run's automatic secret set
(``credentials.known_secrets``) leaves such secrets out altogether and says so.

Only the standard library: the forms are computed here, once, and the bootstrap (which cannot
import sparkjobs) receives them as a list of plain strings.
"""
from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_LENGTH", "redact", "secret_forms"]

MASK = "***"
#: Secrets shorter than this are too weak to mask without damaging the text around them.
MIN_SECRET_LENGTH = 8

_PERCENT = re.compile(r"%[0-9A-F]{2}")
_URLSAFE = str.maketrans("+/", "-_")


def secret_forms(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """Every string to mask for these secrets, longest first (a key inside a longer string is
    masked with it)."""
    return _forms(tuple(sorted({s for s in secrets if s})))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every form of each secret in ``text`` with ``***``."""
    for form in secret_forms(secrets):
        if form in text:
            text = text.replace(form, MASK)
    return text


@functools.lru_cache(maxsize=64)
def _forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    forms: set[str] = set()
    for secret in secrets:
        forms |= _url_forms(secret)
        if len(secret) >= MIN_SECRET_LENGTH:
            raw = secret.encode()
            forms |= _base64_forms(raw)
            forms |= {raw.hex(), raw.hex().upper()}
    forms.discard("")
    return tuple(sorted(forms, key=lambda form: (-len(form), form)))


def _url_forms(secret: str) -> set[str]:
    encoded = {
        secret,
        quote(secret, safe=""),
        quote(secret),  # the default keeps "/"
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        secret.replace("/", "\\/"),  # JSON that escapes slashes
    }
    return encoded | {_PERCENT.sub(lambda match: match.group().lower(), form) for form in encoded}


def _base64_forms(raw: bytes) -> set[str]:
    whole = base64.b64encode(raw).decode()
    forms = {whole, whole.rstrip("="), whole.translate(_URLSAFE), whole.translate(_URLSAFE).rstrip("=")}
    for skip in range(3):  # the secret starting at each offset of a 3-byte group
        piece = raw[skip:]
        encoded = base64.b64encode(piece[: len(piece) // 3 * 3]).decode()
        if len(encoded) >= MIN_SECRET_LENGTH:
            forms |= {encoded, encoded.translate(_URLSAFE)}
    return forms
