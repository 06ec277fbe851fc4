"""Typed log entries and timestamped leaves, with one canonical binary encoding.

Every entry is a frozen dataclass that validates itself when built. The encoding is a
small fixed layout (all integers big-endian, RFC 8446 §3 presentation style):

    struct {
        u8  version = 1;
        u8  type;                       // EntryType code, see TYPE_CODES
        opaque region<2..8>;            // u8 length, ASCII capital letters
        select (type) { ... }           // fields in dataclass order, see _FIELDS
    } Entry;

    u64 integers; `opt_u64` is a u8 presence flag (0 or 1) and, if 1, a u64;
    `str8` is u8 length + ASCII; `bytes16` is u16 length + bytes; `digest` is 32
    bytes; `sig` is a 64-byte Ed25519 signature.

    struct { u8 version = 1; u64 timestamp_ms; opaque entry<1..2^16-1 - 9>; } Leaf;

`decode_entry` refuses anything that does not re-encode to the same bytes, so each
value has exactly one encoding (decode(encode(x)) == x and encode(decode(b)) == b).

No personal data is representable: anchors carry a credential digest, a status
index, a key id and an expiry; nothing else. Key entries carry an Ed25519 signature
by the region's root key over `KEY_ENTRY_DOMAIN || encoding without the signature`.
Times inside entries are POSIX seconds; leaf timestamps are milliseconds.

This module does not decide whether an entry may be appended (see `ledger.log.rules`).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, fields, replace
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from credential.keys import SigningAlg
from ledger.log.errors import EntryError

ENTRY_VERSION = 1
LEAF_VERSION = 1
DIGEST_SIZE = 32  # bytes, SHA-256
ROOT_SIGNATURE_SIZE = 64  # bytes, Ed25519 (RFC 8032)
ROOT_PUBLIC_KEY_SIZE = 32  # bytes, Ed25519 (RFC 8032)
MAX_U64 = (1 << 64) - 1
MAX_TIME_S = (1 << 63) - 1  # seconds; signed 64-bit range, as everywhere else
MAX_STATUS_INDEX = (1 << 40) - 1  # matches credential.claims.MAX_STATUS_INDEX
MAX_KID_CHARS = 64  # characters
MAX_PUBLIC_KEY_DER = 1024  # bytes; P-256 SPKI is 91, Ed25519 SPKI is 44
MAX_LEAF_BYTES = 0xFFFF  # bytes; a leaf must fit a tlog-tiles entry bundle slot
KEY_ENTRY_DOMAIN = b"healthbridge/ledger/key-entry/v1\n"  # domain separation
REGION_RE = re.compile(r"[A-Z]{2,8}")
KID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # base64url thumbprints


class EntryType(StrEnum):
    KEY_ADDED = "key_added"
    KEY_REVOKED = "key_revoked"
    CREDENTIAL_ANCHORED = "credential_anchored"
    CREDENTIAL_REVOKED = "credential_revoked"
    CREDENTIAL_REINSTATED = "credential_reinstated"
    AUDIT_DIGEST = "audit_digest"


class RevocationReason(StrEnum):
    """Why a credential was revoked (no free text: nothing personal can slip in).

    Issuers write UNSPECIFIED on the public log: a reason there (a status change) next
    to a status index that every QR shows would tell anyone who once scanned a code
    that its holder's health status changed. The reason stays in the issuer's records
    and audit log. The other values remain decodable for entries already logged.
    """

    UNSPECIFIED = "unspecified"

    STATUS_CHANGE = "status_change"  # the holder's colour changed; a new one was issued
    SUPERSEDED = "superseded"
    HOLDER_REQUEST = "holder_request"
    ISSUED_IN_ERROR = "issued_in_error"
    KEY_COMPROMISE = "key_compromise"
    FRAUD = "fraud"
    ADMINISTRATIVE = "administrative"
    SOURCE_REVOKED = "source_revoked"  # a conversion whose source credential was revoked


class KeyRevocationReason(StrEnum):
    """Why an issuer signing key was revoked."""

    ROTATION = "rotation"  # retired in favour of a newer key; no compromise
    COMPROMISE = "compromise"  # compromised_at says from when it is untrusted
    DECOMMISSIONED = "decommissioned"


TYPE_CODES: dict[EntryType, int] = {
    EntryType.KEY_ADDED: 1,
    EntryType.KEY_REVOKED: 2,
    EntryType.CREDENTIAL_ANCHORED: 3,
    EntryType.CREDENTIAL_REVOKED: 4,
    EntryType.CREDENTIAL_REINSTATED: 5,
    EntryType.AUDIT_DIGEST: 6,
}
# The entries that change which issuer keys a region has (the revocation snapshot
# carries them verbatim; the mirror replays them).
KEY_ENTRY_TYPES = frozenset({EntryType.KEY_ADDED, EntryType.KEY_REVOKED})
_KEY_ENTRY_CODES = frozenset(TYPE_CODES[t] for t in KEY_ENTRY_TYPES)


def is_key_entry(entry_bytes: bytes) -> bool:
    """Whether canonical entry bytes are a KEY_ADDED / KEY_REVOKED entry. Byte 1 of a
    canonical entry is its type code (see the layout above): no full decode needed on
    the sequencing hot path."""
    return len(entry_bytes) > 1 and entry_bytes[1] in _KEY_ENTRY_CODES


def routing_fields(entry_bytes: bytes) -> tuple[int, int, int | None] | None:
    """(type code, status index, expiry or None) of a canonical CREDENTIAL_ANCHORED,
    CREDENTIAL_REVOKED or CREDENTIAL_REINSTATED entry, read at their fixed places in
    the layout above without a full decode (a sharded node routes by them on the
    submission path; its sequencer still decodes and checks every entry). None for
    any other type or bytes too short to hold the fields."""
    if len(entry_bytes) < 3 or entry_bytes[0] != ENTRY_VERSION:
        return None
    code = entry_bytes[1]
    pos = 3 + entry_bytes[2]  # version, type, str8 region
    try:
        if code == TYPE_CODES[EntryType.CREDENTIAL_ANCHORED]:
            pos += DIGEST_SIZE
            (index,) = struct.unpack_from(">Q", entry_bytes, pos)
            pos += 8
            pos += 1 + entry_bytes[pos]  # str8 kid
            (expires,) = struct.unpack_from(">Q", entry_bytes, pos)
            return code, int(index), int(expires)
        if code in (
            TYPE_CODES[EntryType.CREDENTIAL_REVOKED],
            TYPE_CODES[EntryType.CREDENTIAL_REINSTATED],
        ):
            (index,) = struct.unpack_from(">Q", entry_bytes, pos)
            return code, int(index), None
    except (struct.error, IndexError):
        return None
    return None


def _check_region(region: str) -> None:
    if not isinstance(region, str) or not REGION_RE.fullmatch(region):
        raise EntryError(f"expected a region of 2-8 capital letters, found {region!r}")


def _check_kid(kid: str) -> None:
    if not isinstance(kid, str) or not KID_RE.fullmatch(kid):
        raise EntryError(f"expected a base64url key id of 1-{MAX_KID_CHARS} chars, found {kid!r}")


def _check_time(what: str, value: int | None, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TIME_S:
        raise EntryError(f"expected {what} in POSIX seconds 0..2^63-1, found {value!r}")


def _check_index(value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_STATUS_INDEX:
        raise EntryError(f"expected a status index 0..2^40-1, found {value!r}")


def _check_bytes(what: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        found = len(value) if isinstance(value, bytes) else type(value).__name__
        raise EntryError(f"expected {what} of {size} bytes, found {found}")


def _coerce(obj: object, name: str, enum: type[StrEnum]) -> None:
    value = getattr(obj, name)
    try:
        object.__setattr__(obj, name, enum(value))
    except ValueError as e:
        allowed = ", ".join(m.value for m in enum)
        raise EntryError(f"expected {name} one of {allowed}, found {value!r}") from e


@dataclass(frozen=True)
class KeyAdded:
    """The region registers an issuer signing key (signed by the region root key)."""

    region: str
    kid: str
    alg: SigningAlg
    public_key_der: bytes
    not_before: int
    not_after: int | None
    root_signature: bytes = b""  # empty only before `sign_key_entry`

    def __post_init__(self) -> None:
        _check_region(self.region)
        _check_kid(self.kid)
        _coerce(self, "alg", SigningAlg)
        if not isinstance(self.public_key_der, bytes) or not (
            0 < len(self.public_key_der) <= MAX_PUBLIC_KEY_DER
        ):
            raise EntryError(f"expected a DER public key of 1..{MAX_PUBLIC_KEY_DER} bytes")
        _check_time("not_before", self.not_before)
        _check_time("not_after", self.not_after, optional=True)
        if self.not_after is not None and self.not_after <= self.not_before:
            raise EntryError(
                f"expected not_after > not_before, found {self.not_after} <= {self.not_before}"
            )
        _check_signature_field(self.root_signature)

    @property
    def type(self) -> EntryType:
        return EntryType.KEY_ADDED


@dataclass(frozen=True)
class KeyRevoked:
    """The region revokes a key: retired from `retired_at`; if compromised, every
    credential it signed that was not anchored before `compromised_at` is void."""

    region: str
    kid: str
    compromised_at: int | None
    retired_at: int
    reason: KeyRevocationReason
    root_signature: bytes = b""

    def __post_init__(self) -> None:
        _check_region(self.region)
        _check_kid(self.kid)
        _check_time("compromised_at", self.compromised_at, optional=True)
        _check_time("retired_at", self.retired_at)
        _coerce(self, "reason", KeyRevocationReason)
        if (self.reason is KeyRevocationReason.COMPROMISE) != (self.compromised_at is not None):
            raise EntryError(
                "expected compromised_at exactly when the reason is 'compromise', "
                f"found reason {self.reason.value!r}, compromised_at {self.compromised_at}"
            )
        _check_signature_field(self.root_signature)

    @property
    def type(self) -> EntryType:
        return EntryType.KEY_REVOKED


@dataclass(frozen=True)
class CredentialAnchored:
    """A credential was issued: its digest, status index, signing key and expiry."""

    region: str
    digest: bytes
    status_index: int
    kid: str
    expires_at: int

    def __post_init__(self) -> None:
        _check_region(self.region)
        _check_bytes("a digest", self.digest, DIGEST_SIZE)
        _check_index(self.status_index)
        _check_kid(self.kid)
        _check_time("expires_at", self.expires_at)

    @property
    def type(self) -> EntryType:
        return EntryType.CREDENTIAL_ANCHORED


@dataclass(frozen=True)
class CredentialRevoked:
    region: str
    status_index: int
    reason: RevocationReason
    effective_at: int

    def __post_init__(self) -> None:
        _check_region(self.region)
        _check_index(self.status_index)
        _coerce(self, "reason", RevocationReason)
        _check_time("effective_at", self.effective_at)

    @property
    def type(self) -> EntryType:
        return EntryType.CREDENTIAL_REVOKED


@dataclass(frozen=True)
class CredentialReinstated:
    region: str
    status_index: int
    effective_at: int

    def __post_init__(self) -> None:
        _check_region(self.region)
        _check_index(self.status_index)
        _check_time("effective_at", self.effective_at)

    @property
    def type(self) -> EntryType:
        return EntryType.CREDENTIAL_REINSTATED


@dataclass(frozen=True)
class AuditDigest:
    """The digest of an issuer's admin audit log after `count` records (tamper evidence)."""

    region: str
    digest: bytes
    count: int

    def __post_init__(self) -> None:
        _check_region(self.region)
        _check_bytes("a digest", self.digest, DIGEST_SIZE)
        if not isinstance(self.count, int) or not 0 <= self.count <= MAX_U64:
            raise EntryError(f"expected a record count 0..2^64-1, found {self.count!r}")

    @property
    def type(self) -> EntryType:
        return EntryType.AUDIT_DIGEST


Entry = (
    KeyAdded
    | KeyRevoked
    | CredentialAnchored
    | CredentialRevoked
    | CredentialReinstated
    | AuditDigest
)
KeyEntry = KeyAdded | KeyRevoked

_CLASSES: dict[EntryType, type[Entry]] = {
    EntryType.KEY_ADDED: KeyAdded,
    EntryType.KEY_REVOKED: KeyRevoked,
    EntryType.CREDENTIAL_ANCHORED: CredentialAnchored,
    EntryType.CREDENTIAL_REVOKED: CredentialRevoked,
    EntryType.CREDENTIAL_REINSTATED: CredentialReinstated,
    EntryType.AUDIT_DIGEST: AuditDigest,
}
_BY_CODE = {code: t for t, code in TYPE_CODES.items()}

# Field kinds in dataclass order (region, always first, is str8).
_FIELDS: dict[EntryType, tuple[str, ...]] = {
    EntryType.KEY_ADDED: ("str8", "str8", "str8", "bytes16", "u64", "opt_u64", "sig"),
    EntryType.KEY_REVOKED: ("str8", "str8", "opt_u64", "u64", "str8", "sig"),
    EntryType.CREDENTIAL_ANCHORED: ("str8", "digest", "u64", "str8", "u64"),
    EntryType.CREDENTIAL_REVOKED: ("str8", "u64", "str8", "u64"),
    EntryType.CREDENTIAL_REINSTATED: ("str8", "u64", "u64"),
    EntryType.AUDIT_DIGEST: ("str8", "digest", "u64"),
}


def _check_signature_field(sig: bytes) -> None:
    if not isinstance(sig, bytes) or len(sig) not in (0, ROOT_SIGNATURE_SIZE):
        raise EntryError(f"expected a {ROOT_SIGNATURE_SIZE}-byte root signature (or none yet)")


def _put(out: bytearray, kind: str, value: object) -> None:
    if kind == "str8":
        raw = str(value).encode("ascii")
        out += struct.pack(">B", len(raw)) + raw
    elif kind == "bytes16":
        assert isinstance(value, bytes)
        out += struct.pack(">H", len(value)) + value
    elif kind == "u64":
        out += struct.pack(">Q", value)
    elif kind == "opt_u64":
        out += b"\x00" if value is None else b"\x01" + struct.pack(">Q", value)
    elif kind in ("digest", "sig"):
        assert isinstance(value, bytes)
        out += value


def _encode(entry: Entry, with_signature: bool) -> bytes:
    out = bytearray([ENTRY_VERSION, TYPE_CODES[entry.type]])
    for kind, f in zip(_FIELDS[entry.type], fields(entry), strict=True):
        if kind == "sig" and not with_signature:
            continue
        _put(out, kind, getattr(entry, f.name))
    return bytes(out)


def encode_entry(entry: Entry) -> bytes:
    """The canonical bytes of an entry. Key entries must be signed first."""
    if isinstance(entry, KeyAdded | KeyRevoked) and not entry.root_signature:
        raise EntryError(f"expected a root signature on {entry.type.value}, found none")
    return _encode(entry, with_signature=True)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise EntryError(
                f"expected {n} more bytes at offset {self.pos}, found {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def get(self, kind: str) -> object:
        if kind == "str8":
            raw = self.take(self.take(1)[0])
            try:
                return raw.decode("ascii")
            except UnicodeDecodeError as e:
                raise EntryError(f"expected ASCII text at offset {self.pos}") from e
        if kind == "bytes16":
            return self.take(struct.unpack(">H", self.take(2))[0])
        if kind == "u64":
            return int(struct.unpack(">Q", self.take(8))[0])
        if kind == "opt_u64":
            flag = self.take(1)[0]
            if flag not in (0, 1):
                raise EntryError(f"expected a presence flag 0 or 1, found {flag}")
            return int(struct.unpack(">Q", self.take(8))[0]) if flag else None
        if kind == "digest":
            return self.take(DIGEST_SIZE)
        return self.take(ROOT_SIGNATURE_SIZE)  # "sig"


def decode_entry(data: bytes) -> Entry:
    """Parse canonical entry bytes; refuses unknown versions/types, truncation,
    trailing bytes, invalid values and any non-canonical spelling."""
    if not isinstance(data, bytes | bytearray):
        raise EntryError(f"expected bytes, found {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_LEAF_BYTES:
        raise EntryError(f"expected at most {MAX_LEAF_BYTES} bytes, found {len(data)}")
    r = _Reader(data)
    version, code = r.take(1)[0], r.take(1)[0]
    if version != ENTRY_VERSION:
        raise EntryError(f"expected entry version {ENTRY_VERSION}, found {version}")
    if code not in _BY_CODE:
        raise EntryError(f"expected an entry type code 1..{len(_BY_CODE)}, found {code}")
    etype = _BY_CODE[code]
    values = [r.get(kind) for kind in _FIELDS[etype]]
    if r.pos != len(data):
        raise EntryError(f"expected {r.pos} bytes, found {len(data)} (trailing bytes)")
    try:
        entry = _CLASSES[etype](*values)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        if isinstance(e, EntryError):
            raise
        raise EntryError(f"expected valid {etype.value} fields: {e}") from e
    if encode_entry(entry) != data:
        raise EntryError(f"expected the canonical encoding of {etype.value}")
    return entry


def key_entry_message(entry: KeyEntry) -> bytes:
    """What the region root key signs: the domain string, then the entry's canonical
    encoding without the signature field."""
    return KEY_ENTRY_DOMAIN + _encode(entry, with_signature=False)


def sign_key_entry(entry: KeyEntry, root_key: Ed25519PrivateKey) -> KeyEntry:
    """The entry with its root signature set."""
    if not isinstance(root_key, Ed25519PrivateKey):
        raise EntryError(f"expected an Ed25519 root key, found {type(root_key).__name__}")
    return replace(entry, root_signature=root_key.sign(key_entry_message(entry)))


def root_public_key_bytes(root_key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The 32-byte raw Ed25519 public key of a root key."""
    public = root_key.public_key() if isinstance(root_key, Ed25519PrivateKey) else root_key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify_key_entry(entry: KeyEntry, root_public_key: bytes) -> None:
    """Raise `EntryError` unless the root key signed this key entry."""
    _check_bytes("a root public key", root_public_key, ROOT_PUBLIC_KEY_SIZE)
    if len(entry.root_signature) != ROOT_SIGNATURE_SIZE:
        raise EntryError(f"expected a root signature on {entry.type.value}, found none")
    try:
        Ed25519PublicKey.from_public_bytes(root_public_key).verify(
            entry.root_signature, key_entry_message(entry)
        )
    except InvalidSignature as e:
        raise EntryError(f"root signature on {entry.type.value} {entry.kid} does not verify") from e


@dataclass(frozen=True)
class TimestampedEntry:
    """A log leaf: the sequencer's timestamp (ms) and the entry's canonical bytes."""

    timestamp_ms: int
    entry_bytes: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.timestamp_ms, int) or not 0 <= self.timestamp_ms <= MAX_U64:
            raise EntryError(f"expected a timestamp 0..2^64-1 ms, found {self.timestamp_ms!r}")
        if not isinstance(self.entry_bytes, bytes) or not self.entry_bytes:
            raise EntryError("expected non-empty entry bytes")

    @property
    def entry(self) -> Entry:
        return decode_entry(self.entry_bytes)


_LEAF_HEADER = struct.Struct(">BQ")


def encode_leaf(leaf: TimestampedEntry) -> bytes:
    data = _LEAF_HEADER.pack(LEAF_VERSION, leaf.timestamp_ms) + leaf.entry_bytes
    if len(data) > MAX_LEAF_BYTES:
        raise EntryError(f"expected a leaf of at most {MAX_LEAF_BYTES} bytes, found {len(data)}")
    return data


def decode_leaf(data: bytes) -> TimestampedEntry:
    """Parse a leaf; its entry bytes must themselves be a canonical entry."""
    return decode_leaf_entry(data)[0]


def decode_leaf_entry(data: bytes) -> tuple[TimestampedEntry, Entry]:
    """Parse a leaf and its entry in one pass: the leaf and the decoded entry (readers
    that need both avoid decoding the entry twice)."""
    if not isinstance(data, bytes | bytearray):
        raise EntryError(f"expected bytes, found {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_LEAF_BYTES:
        raise EntryError(f"expected a leaf of at most {MAX_LEAF_BYTES} bytes, found {len(data)}")
    if len(data) <= _LEAF_HEADER.size:
        raise EntryError(
            f"expected a leaf longer than {_LEAF_HEADER.size} bytes, found {len(data)}"
        )
    version, ts = _LEAF_HEADER.unpack_from(data)
    if version != LEAF_VERSION:
        raise EntryError(f"expected leaf version {LEAF_VERSION}, found {version}")
    leaf = TimestampedEntry(int(ts), data[_LEAF_HEADER.size :])
    return leaf, decode_entry(leaf.entry_bytes)
