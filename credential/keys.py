"""Signing algorithms and key helpers for credentials and device proofs.

Generates, serialises and loads the two key types the format uses: ECDSA P-256
(ES256, the default issuer algorithm and the only device-key algorithm) and Ed25519
(EdDSA). Computes key ids as RFC 7638 JWK thumbprints. Private keys go to files
created with mode 0600. Does not decide which key is trusted: that is the ledger's
registration (`credential.trust.RegisteredKey`).
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from common.b64 import b64url
from common.secret_file import SECRET_FILE_MODE, write_secret
from credential.errors import KeyFormatError

KID_CHARS = 16  # characters of base64url thumbprint kept as the key id (96 bits)
P256_COORD_BYTES = 32  # bytes per coordinate / scalar on P-256
ES256_SIGNATURE_BYTES = 64  # raw r||s (RFC 7518 §3.4)
ED25519_SIGNATURE_BYTES = 64  # RFC 8032 §5.1.6
PRIVATE_KEY_FILE_MODE = SECRET_FILE_MODE  # common.secret_file: owner read/write only
# Order n of the P-256 group (SEC 2 v2 §2.4.2 / FIPS 186-4 D.1.2.3).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_HALF_ORDER = P256_ORDER // 2
_P256_HALF_ORDER_BE = P256_HALF_ORDER.to_bytes(P256_COORD_BYTES, "big")
_DER_SEQUENCE = 0x30  # X.690 §8.9 tag, constructed
_DER_INTEGER = 0x02  # X.690 §8.3 tag


def _der_framing(r_pad: bool, s_pad: bool) -> tuple[bytes, bytes]:
    """The bytes before r and between r and s of a DER ES256 signature whose 32-byte r
    and s start with a non-zero byte, a 0x00 added in front of a set top bit."""
    r_len, s_len = P256_COORD_BYTES + r_pad, P256_COORD_BYTES + s_pad
    head = bytes((_DER_SEQUENCE, r_len + s_len + 4, _DER_INTEGER, r_len)) + b"\x00" * r_pad
    return head, bytes((_DER_INTEGER, s_len)) + b"\x00" * s_pad


# Indexed by (r's top bit) | (s's top bit) << 1.
_DER_FRAMING = tuple(_der_framing(bool(i & 1), bool(i & 2)) for i in range(4))

# DER prefix of a SubjectPublicKeyInfo for an uncompressed P-256 point (RFC 5480 §2):
# SEQUENCE { SEQUENCE { id-ecPublicKey, secp256r1 }, BIT STRING { 0x04 || x || y } }.
P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class SigningAlg(StrEnum):
    """JWS algorithms a region may register for a key (RFC 7518 §3.4, RFC 8037 §3.1)."""

    ES256 = "ES256"
    EDDSA = "EdDSA"


def generate_private_key(alg: SigningAlg = SigningAlg.ES256) -> PrivateKey:
    """A fresh private key for `alg`."""
    if alg is SigningAlg.ES256:
        return ec.generate_private_key(ec.SECP256R1())
    if alg is SigningAlg.EDDSA:
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyFormatError(f"expected ES256 or EdDSA, found {alg!r}")


def alg_of(key: PrivateKey | PublicKey) -> SigningAlg:
    """The JWS algorithm a key is used with; refuses curves other than P-256."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return SigningAlg.EDDSA
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyFormatError(f"expected curve P-256, found {key.curve.name}")
        return SigningAlg.ES256
    raise KeyFormatError(f"expected a P-256 or Ed25519 key, found {type(key).__name__}")


def public_key_der(key: PrivateKey | PublicKey) -> bytes:
    """DER SubjectPublicKeyInfo of a private or public key."""
    pub = (
        key.public_key()
        if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
        else key
    )
    alg_of(pub)
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key_der(der: bytes) -> PublicKey:
    """Load a DER SubjectPublicKeyInfo; only P-256 and Ed25519 keys are accepted."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFormatError(f"expected a DER SubjectPublicKeyInfo: {e}") from e
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise KeyFormatError(f"expected a P-256 or Ed25519 key, found {type(key).__name__}")
    alg_of(key)
    return key


def p256_point_from_der(der: bytes) -> tuple[bytes, bytes]:
    """The (x, y) coordinates of a P-256 SubjectPublicKeyInfo, validated."""
    key = load_public_key_der(der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise KeyFormatError("expected a P-256 device key, found Ed25519")
    numbers = key.public_numbers()
    return (
        numbers.x.to_bytes(P256_COORD_BYTES, "big"),
        numbers.y.to_bytes(P256_COORD_BYTES, "big"),
    )


def p256_der_from_point(x: bytes, y: bytes) -> bytes:
    """DER SubjectPublicKeyInfo from P-256 coordinates (no curve check: see load)."""
    if len(x) != P256_COORD_BYTES or len(y) != P256_COORD_BYTES:
        raise KeyFormatError(f"expected 32-byte coordinates, found {len(x)} and {len(y)}")
    return P256_SPKI_PREFIX + b"\x04" + x + y


def public_jwk(der: bytes) -> dict[str, str]:
    """The public JWK members of a key (RFC 7518 §6.2.1, RFC 8037 §2)."""
    key = load_public_key_der(der)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    x, y = p256_point_from_der(der)
    return {"crv": "P-256", "kty": "EC", "x": b64url(x), "y": b64url(y)}


def key_id(public_key_der: bytes) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, required members in lexicographic order,
    no whitespace), base64url, truncated to KID_CHARS characters."""
    canonical = json.dumps(public_jwk(public_key_der), separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())[:KID_CHARS]


def private_key_to_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the passphrase when one is given."""
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def private_key_from_pem(pem: bytes, passphrase: bytes | None = None) -> PrivateKey:
    """Load a PKCS#8 PEM private key (P-256 or Ed25519)."""
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise KeyFormatError(f"expected a PKCS#8 PEM private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyFormatError(f"expected a P-256 or Ed25519 key, found {type(key).__name__}")
    alg_of(key)
    return key


def write_private_key(path: str | Path, key: PrivateKey, passphrase: bytes | None = None) -> None:
    """Write the key as PEM to a file with mode 0600 (set before any byte is written)."""
    write_secret(path, private_key_to_pem(key, passphrase), overwrite=True)


def read_private_key(path: str | Path, passphrase: bytes | None = None) -> PrivateKey:
    """Read a PEM private key file written by `write_private_key`."""
    return private_key_from_pem(Path(path).read_bytes(), passphrase)


def es256_raw_signature(der_signature: bytes) -> bytes:
    """Convert a DER ECDSA signature to raw r||s (RFC 7518 §3.4), in low-s form.

    ECDSA is malleable: (r, s) and (r, n - s) both verify. Every signature this
    project makes is normalised to s <= n/2 (as Bitcoin's BIP 62 and libsecp256k1 do),
    and verifiers refuse the other form (`is_low_s`), so one message has one signature
    and a credential one digest."""
    r, s = decode_dss_signature(der_signature)
    if s > P256_HALF_ORDER:
        s = P256_ORDER - s
    return r.to_bytes(P256_COORD_BYTES, "big") + s.to_bytes(P256_COORD_BYTES, "big")


def is_low_s(raw: bytes) -> bool:
    """Whether a raw r||s ES256 signature is in the canonical low-s form (s <= n/2)."""
    # Equal-length big-endian byte strings compare as the numbers they spell.
    return len(raw) == ES256_SIGNATURE_BYTES and raw[P256_COORD_BYTES:] <= _P256_HALF_ORDER_BE


def low_s_raw(raw: bytes) -> bytes:
    """The low-s form of a raw r||s signature (unchanged when it already is)."""
    if len(raw) != ES256_SIGNATURE_BYTES:
        raise ValueError(f"expected {ES256_SIGNATURE_BYTES}-byte r||s, found {len(raw)}")
    s = int.from_bytes(raw[P256_COORD_BYTES:], "big")
    if s <= P256_HALF_ORDER:
        return raw
    return raw[:P256_COORD_BYTES] + (P256_ORDER - s).to_bytes(P256_COORD_BYTES, "big")


def es256_der_signature(raw: bytes) -> bytes:
    """Convert raw r||s to the DER form `cryptography` verifies: SEQUENCE { INTEGER r,
    INTEGER s } (RFC 3279 §2.2.3). Written out in bytes, with short-form lengths (at
    most 70 content bytes), because it runs twice per scan; the same bytes as
    `encode_dss_signature` (the tests compare them)."""
    if len(raw) != ES256_SIGNATURE_BYTES:
        raise ValueError(f"expected {ES256_SIGNATURE_BYTES}-byte r||s, found {len(raw)}")
    # X.690 §8.3: each INTEGER in the fewest bytes of two's complement, so leading zero
    # bytes go and a 0x00 goes in front of a set top bit. When neither number starts
    # with a zero byte (all but ~1 in 128 signatures) only the top bits choose the
    # framing, which is looked up.
    r0, s0 = raw[0], raw[P256_COORD_BYTES]
    if r0 and s0:
        head, middle = _DER_FRAMING[(r0 >> 7) | (s0 >> 7) << 1]
        return head + raw[:P256_COORD_BYTES] + middle + raw[P256_COORD_BYTES:]
    r = raw[:P256_COORD_BYTES].lstrip(b"\x00") or b"\x00"
    s = raw[P256_COORD_BYTES:].lstrip(b"\x00") or b"\x00"
    if r[0] & 0x80:
        r = b"\x00" + r
    if s[0] & 0x80:
        s = b"\x00" + s
    return (
        bytes((_DER_SEQUENCE, len(r) + len(s) + 4, _DER_INTEGER, len(r)))
        + r
        + bytes((_DER_INTEGER, len(s)))
        + s
    )
