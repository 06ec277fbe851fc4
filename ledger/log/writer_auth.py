"""Writer authentication for POST /v1/entries: the one definition of what a writer
signs and of the `Authorization` header that carries it (docs/ledger-protocol.md).

    Authorization: HB-Ledger-Writer <base64url key>.<unix seconds>.<base64url signature>

The signed bytes are `signing_input(origin, timestamp, body)`:

    "HB-Ledger-Submit\\n" || origin || "\\n" || decimal timestamp || "\\n" || hex SHA-256(body)

encoded as UTF-8 on both sides (a C2SP checkpoint origin is a UTF-8 line; ASCII origins
give the same bytes as before). The leading context line separates these signatures
from every other Ed25519 signature a key might make (C2SP signed-note "Signatures"
uses the same idea). Pure: parse, render, sign and verify; the node decides which keys
may write and how far the timestamp may drift.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.b64 import b64url, b64url_decode
from ledger.log.errors import LedgerError

AUTH_SCHEME = "HB-Ledger-Writer"
AUTH_CONTEXT = b"HB-Ledger-Submit\n"  # domain separation for writer signatures
MAX_AUTH_FIELD_CHARS = 200  # base64url characters of a writer key or signature field
MAX_TIMESTAMP_DIGITS = 12  # decimal digits of the timestamp field


class WriterAuthError(LedgerError):
    """The Authorization header is missing, malformed, or its signature does not verify."""


def signing_input(origin: str, timestamp: int, body: bytes) -> bytes:
    """The bytes a writer signs: context, origin, timestamp, SHA-256 of the body."""
    digest = hashlib.sha256(body).hexdigest()
    return AUTH_CONTEXT + f"{origin}\n{timestamp}\n{digest}".encode()


def raw_public_key(key: Ed25519PrivateKey) -> bytes:
    """The 32-byte Ed25519 public key (RFC 8032 §5.1.5) of a writer key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class WriterAuth:
    """One parsed Authorization header."""

    public_key: bytes
    timestamp: int
    signature: bytes

    @classmethod
    def sign(cls, key: Ed25519PrivateKey, origin: str, body: bytes, now: int) -> WriterAuth:
        return cls(raw_public_key(key), now, key.sign(signing_input(origin, now, body)))

    @classmethod
    def parse(cls, header: str) -> WriterAuth:
        scheme, _, rest = header.partition(" ")
        if scheme != AUTH_SCHEME or rest.count(".") != 2:
            raise WriterAuthError(f"expected 'Authorization: {AUTH_SCHEME} <key>.<ts>.<sig>'")
        key_text, ts_text, sig_text = rest.split(".")
        if not (ts_text.isascii() and ts_text.isdigit() and len(ts_text) <= MAX_TIMESTAMP_DIGITS):
            raise WriterAuthError("malformed writer credentials")
        try:
            key = b64url_decode(key_text, max_chars=MAX_AUTH_FIELD_CHARS)
            sig = b64url_decode(sig_text, max_chars=MAX_AUTH_FIELD_CHARS)
        except ValueError as e:
            raise WriterAuthError("malformed writer credentials") from e
        return cls(key, int(ts_text), sig)

    def render(self) -> str:
        return f"{AUTH_SCHEME} {b64url(self.public_key)}.{self.timestamp}.{b64url(self.signature)}"

    def verify(self, origin: str, body: bytes) -> None:
        """Raise WriterAuthError unless the signature covers (origin, timestamp, body)."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                self.signature, signing_input(origin, self.timestamp, body)
            )
        except (InvalidSignature, ValueError) as e:
            raise WriterAuthError("writer signature does not verify") from e


def authorization(key: Ed25519PrivateKey, origin: str, body: bytes, now: int) -> str:
    """The Authorization header value for a POST /v1/entries body."""
    return WriterAuth.sign(key, origin, body, now).render()
