"""The wallet's `Authorization: HB-Device` header: parse, render and verify.

Format (see issuer/openapi.yaml):
    HB-Device <holder_id>.<unix_ts>.<base64url ES256 signature>
The signature (DER, or raw r||s of 64 bytes as in RFC 7518 §3.4) is made with the
enrolled device key over the ASCII bytes "HB-Device\\n<METHOD>\\n<path>\\n<unix_ts>".
Pure: the caller supplies the enrolled key and the reference time. Replay of one header
is bounded by the skew window and by the caller refusing a timestamp more than
`reorder_s` older than the newest one it accepted from that holder (its high-water
mark). The same header may be sent again within the window (a wallet retrying), and
requests of one wallet may arrive out of order (two overlapping fetches, the one signed
a second later overtaking the other): both only return the same holder-bound
credential, useless without the device key. A strict "never older than the last one"
rule refused such a wallet with 401; the tolerance is the anti-replay window of
RFC 4303 §3.4.3 applied to timestamps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from common.b64 import b64url, b64url_decode
from issuer.errors import BadRequestError, UnauthorizedError

SCHEME = "HB-Device"
MAX_HEADER_CHARS = 512  # a header longer than this is refused before parsing
RAW_P256_SIGNATURE_BYTES = 64  # r||s, RFC 7518 §3.4
P256_COORDINATE_BYTES = 32
HOLDER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
SIG_RE = re.compile(r"^[A-Za-z0-9_-]{40,200}$")
# Parsed device keys kept in memory, keyed by their DER bytes (so a holder whose key
# changed simply misses): parsing the SPKI on every request cost as much as verifying.
DEVICE_KEY_CACHE_ENTRIES = 65_536


@dataclass(frozen=True)
class DeviceAuth:
    holder_id: str
    timestamp: int
    signature: bytes

    @classmethod
    def parse(cls, header: str) -> DeviceAuth:
        if len(header) > MAX_HEADER_CHARS:
            raise UnauthorizedError(f"Authorization header longer than {MAX_HEADER_CHARS}")
        scheme, _, value = header.partition(" ")
        if scheme != SCHEME:
            raise UnauthorizedError(f"expected the {SCHEME} scheme, found {scheme[:16]!r}")
        parts = value.strip().split(".")
        if len(parts) != 3:
            raise UnauthorizedError("expected <holder_id>.<unix_ts>.<signature>")
        holder_id, ts, sig = parts
        if not HOLDER_ID_RE.fullmatch(holder_id) or not ts.isdigit() or len(ts) > 12:
            raise UnauthorizedError("malformed holder id or timestamp in HB-Device header")
        if not SIG_RE.fullmatch(sig):
            raise UnauthorizedError("malformed signature in HB-Device header")
        return cls(holder_id, int(ts), decode_field(sig))

    def render(self) -> str:
        return f"{SCHEME} {self.holder_id}.{self.timestamp}.{b64url(self.signature)}"


def signed_message(method: str, path: str, timestamp: int) -> bytes:
    return f"{SCHEME}\n{method.upper()}\n{path}\n{timestamp}".encode("ascii")


def decode_field(text: str) -> bytes:
    """A base64url header field (common.b64, strict), or a 400."""
    try:
        return b64url_decode(text)
    except ValueError as e:
        raise BadRequestError("expected base64url text") from e


@lru_cache(maxsize=DEVICE_KEY_CACHE_ENTRIES)
def load_device_key(der: bytes) -> ec.EllipticCurvePublicKey:
    """Load a device key (DER SPKI) and insist on P-256: device keys are ES256 only.
    Cached by DER bytes (public keys are immutable; a refused key is not cached)."""
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError) as e:
        raise BadRequestError("device_key is not a DER SubjectPublicKeyInfo") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise BadRequestError("device_key must be a P-256 (ES256) public key")
    return key


def check_order(timestamp: int, last_accepted_ts: int, reorder_s: int) -> None:
    """Refuse a timestamp more than `reorder_s` seconds older than the holder's newest
    accepted one (its high-water mark); anything newer, equal or slightly older passes."""
    if timestamp < last_accepted_ts - reorder_s:
        raise UnauthorizedError(
            f"HB-Device timestamp is more than {reorder_s}s older than one already used"
        )


def verify_device_auth(
    auth: DeviceAuth,
    device_key_der: bytes,
    method: str,
    path: str,
    now: int,
    skew_s: int,
    last_accepted_ts: int = 0,
    reorder_s: int = 0,
) -> None:
    """Raise UnauthorizedError unless the header is fresh, not more than `reorder_s`
    older than the newest accepted one, and signed by the enrolled device key."""
    if abs(now - auth.timestamp) > skew_s:
        raise UnauthorizedError(
            f"HB-Device timestamp {auth.timestamp} is outside +-{skew_s}s of {now}"
        )
    check_order(auth.timestamp, last_accepted_ts, reorder_s)
    sig = auth.signature
    if len(sig) == RAW_P256_SIGNATURE_BYTES:
        r = int.from_bytes(sig[:P256_COORDINATE_BYTES], "big")
        s = int.from_bytes(sig[P256_COORDINATE_BYTES:], "big")
        sig = encode_dss_signature(r, s)
    try:
        load_device_key(bytes(device_key_der)).verify(
            sig, signed_message(method, path, auth.timestamp), ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError, BadRequestError) as e:
        raise UnauthorizedError("HB-Device signature does not verify") from e
