"""A versioned byte encoding of the rules' `LogState` (plus the log's key entries), so a
node restarts from a stored snapshot and replays only the leaves after it.

What it does: `encode_state_snapshot(state, key_entries) -> bytes` and
`decode_state_snapshot(data) -> StateSnapshot` (decode(encode(x)) == x, and the bytes
are deterministic for one state). Layout: magic "HBLS", version byte, then three
length-prefixed parts: a JSON header (sorted keys: region, root key, size, last leaf
timestamp, audit count, key records and the raw key entries the revocation snapshots
carry), the anchored status indices and the revoked status indices, each a portable
64-bit roaring bitmap. What it does not: decide anything (ledger.log.rules does) or touch
storage (ledger.node.storage keeps the bytes next to the batch that produced them).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from pyroaring import BitMap64

from credential.keys import SigningAlg
from ledger.log.entries import KeyRevocationReason
from ledger.log.errors import LedgerError
from ledger.log.rules import IndexSet, KeyRecord, LogState

MAGIC = b"HBLS"
VERSION = 1
MAX_HEADER_BYTES = 16 * 1024 * 1024  # bytes; key records are few, this is a sanity bound
_LEN = struct.Struct(">Q")


class StateSnapshotError(LedgerError):
    """Snapshot bytes that are not a valid encoding of a log state."""


@dataclass(frozen=True)
class StateSnapshot:
    state: LogState
    key_entries: tuple[bytes, ...]  # canonical KEY_ADDED / KEY_REVOKED entry bytes, in order


def _key_json(k: KeyRecord) -> dict[str, Any]:
    return {
        "kid": k.kid,
        "alg": k.alg.value,
        "der": k.public_key_der.hex(),
        "not_before": k.not_before,
        "not_after": k.not_after,
        "retired_at": k.retired_at,
        "compromised_at": k.compromised_at,
        "reason": None if k.revocation_reason is None else k.revocation_reason.value,
    }


def _opt_int(v: object, what: str) -> int | None:
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise StateSnapshotError(f"expected an integer or null for {what}, found {v!r}")
    return v


def _int(v: object, what: str) -> int:
    got = _opt_int(v, what)
    if got is None:
        raise StateSnapshotError(f"expected an integer for {what}, found null")
    return got


def _key_record(d: object) -> KeyRecord:
    if not isinstance(d, dict):
        raise StateSnapshotError(f"expected a key record object, found {type(d).__name__}")
    try:
        reason = d["reason"]
        return KeyRecord(
            kid=str(d["kid"]),
            alg=SigningAlg(d["alg"]),
            public_key_der=bytes.fromhex(d["der"]),
            not_before=_int(d["not_before"], "not_before"),
            not_after=_opt_int(d["not_after"], "not_after"),
            retired_at=_opt_int(d["retired_at"], "retired_at"),
            compromised_at=_opt_int(d["compromised_at"], "compromised_at"),
            revocation_reason=None if reason is None else KeyRevocationReason(reason),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise StateSnapshotError(f"bad key record: {e}") from e


def encode_state_snapshot(state: LogState, key_entries: tuple[bytes, ...] = ()) -> bytes:
    header = {
        "region": state.region,
        "root_public_key": state.root_public_key.hex(),
        "size": state.size,
        "last_timestamp_ms": state.last_timestamp_ms,
        "audit_count": state.audit_count,
        "keys": [_key_json(state.keys[kid]) for kid in sorted(state.keys)],
        "key_entries": [e.hex() for e in key_entries],
    }
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    parts = [head, state.anchored.to_bitmap().serialize(), state.revoked.to_bitmap().serialize()]
    return MAGIC + bytes([VERSION]) + b"".join(_LEN.pack(len(p)) + p for p in parts)


def _parts(data: bytes) -> list[bytes]:
    if data[:4] != MAGIC:
        raise StateSnapshotError(f"expected magic {MAGIC!r}, found {data[:4]!r}")
    if len(data) < 5 or data[4] != VERSION:
        found = data[4] if len(data) > 4 else None
        raise StateSnapshotError(f"expected version {VERSION}, found {found}")
    pos, out = 5, []
    for _ in range(3):
        if pos + _LEN.size > len(data):
            raise StateSnapshotError("truncated snapshot: missing a part length")
        (n,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        if pos + n > len(data):
            raise StateSnapshotError(f"truncated snapshot: part of {n} bytes runs past the end")
        out.append(data[pos : pos + n])
        pos += n
    if pos != len(data):
        raise StateSnapshotError(f"expected the snapshot to end at {pos}, found {len(data)} bytes")
    return out


def _index_set(raw: bytes) -> IndexSet:
    try:
        bm = BitMap64.deserialize(raw)
    except (ValueError, OverflowError) as e:
        raise StateSnapshotError(f"bad roaring bitmap: {e}") from e
    return IndexSet.of(bm)


def decode_state_snapshot(data: bytes) -> StateSnapshot:
    head, anchored, revoked = _parts(bytes(data))
    if len(head) > MAX_HEADER_BYTES:
        raise StateSnapshotError(f"expected a header of at most {MAX_HEADER_BYTES} bytes")
    try:
        h = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise StateSnapshotError(f"bad snapshot header: {e}") from e
    if not isinstance(h, dict):
        raise StateSnapshotError("expected a JSON object as the snapshot header")
    try:
        keys = {r.kid: r for r in (_key_record(x) for x in h["keys"])}
        key_entries = tuple(bytes.fromhex(x) for x in h["key_entries"])
        base = LogState.empty(str(h["region"]), bytes.fromhex(h["root_public_key"]))
        state = LogState(
            region=base.region,
            root_public_key=base.root_public_key,
            keys=keys,
            anchored=_index_set(anchored),
            revoked=_index_set(revoked),
            last_timestamp_ms=_int(h["last_timestamp_ms"], "last_timestamp_ms"),
            audit_count=_int(h["audit_count"], "audit_count"),
            size=_int(h["size"], "size"),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise StateSnapshotError(f"bad snapshot header: {e}") from e
    return StateSnapshot(state, key_entries)
