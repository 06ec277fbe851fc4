"""Compact revocation state: content-addressed snapshots and deltas of a region's log.

A station must learn a region's revocations without downloading every anchor of a
ten-million-credential log. A `RevocationSnapshot` is the part of a log's state a
station needs, as of one tree size:

- the revoked status indices, as a compressed bitmap (Roaring, portable format) —
  status indices are allocated densely by the issuer, so a bitmap beats both a hash
  list and a filter cascade;
- the anchored status indices, the same way (format version 2): dense allocation makes
  them a few runs, tens of kilobytes at ten million credentials, so a compact station
  can refuse a credential whose status index was never anchored (`not_anchored`);
- the key entries (KEY_ADDED / KEY_REVOKED leaves, verbatim: each carries the region
  root key's signature, so a station can check them on its own).

The snapshot's SHA-256 digest is committed in the region's checkpoint as an
extension line (`REVOCATION_EXTENSION_PREFIX`), which the validating witnesses
re-derive from the entries before they cosign; a station accepts a snapshot fetched
from any node or mirror only when its digest matches a quorum-cosigned checkpoint.
A `RevocationDelta` (the XOR of two revoked bitmaps, the newly anchored indices and the
new key entries) moves a station from one committed snapshot to the next and is checked
against both digests.

Pure: bytes in, typed values or `RevocationError` out. No I/O, no clock, and no
knowledge of the entry encoding (key entries are opaque bytes here).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pyroaring import BitMap, FrozenBitMap

from ledger.log.errors import LedgerError

SNAPSHOT_MAGIC = b"HBRS"
DELTA_MAGIC = b"HBRD"
FORMAT_VERSION = 2  # 2: the anchored index set joined the snapshot and the delta
DIGEST_SIZE = 32  # bytes, SHA-256
MAX_REGION_BYTES = 8  # bytes; region ids are 2-8 capital letters
MAX_KEY_ENTRIES = 4096  # key entries per region; rotations are rare
MAX_KEY_ENTRY_BYTES = 4096  # bytes per encoded key entry
MAX_BITMAP_BYTES = 64 << 20  # bytes; 2^32 indices in a full bitmap stay far below
MAX_STATUS_INDEX = 2**32 - 1  # Roaring 32-bit bitmaps; ample per region
# tlog-checkpoint extension line carrying the snapshot digest of the checkpoint's tree.
REVOCATION_EXTENSION_PREFIX = "healthbridge/revocations "


class RevocationError(LedgerError, ValueError):
    """A snapshot or delta is malformed, non-canonical, or does not match its digest."""


def _u8(data: memoryview, pos: int) -> tuple[int, int]:
    if pos + 1 > len(data):
        raise RevocationError(f"truncated at byte {pos}: expected 1 more byte")
    return data[pos], pos + 1


def _take(data: memoryview, pos: int, n: int, what: str) -> tuple[bytes, int]:
    if pos + n > len(data):
        raise RevocationError(f"truncated {what}: expected {n} bytes, found {len(data) - pos}")
    return bytes(data[pos : pos + n]), pos + n


def _uint(data: memoryview, pos: int, fmt: str, what: str) -> tuple[int, int]:
    raw, pos = _take(data, pos, struct.calcsize(fmt), what)
    return int(struct.unpack(fmt, raw)[0]), pos


def _bitmap_bytes(bm: BitMap) -> bytes:
    # Canonical form: run containers where they are smaller (Roaring's run_optimize),
    # then the portable serialisation, so equal sets give equal bytes.
    copy = BitMap(bm)
    copy.run_optimize()
    return bytes(copy.serialize())


def _parse_bitmap(raw: bytes) -> BitMap:
    try:
        bm = BitMap.deserialize(raw)
    except Exception as e:  # pyroaring raises ValueError and others on garbage
        raise RevocationError("bitmap is not a valid portable Roaring bitmap") from e
    if _bitmap_bytes(bm) != raw:
        raise RevocationError("bitmap is not in canonical (run-optimised) form")
    return BitMap(bm)


def _render_header(magic: bytes, region: str) -> bytes:
    r = region.encode("ascii")
    return magic + bytes([FORMAT_VERSION, len(r)]) + r


def _parse_header(data: memoryview, magic: bytes) -> tuple[str, int]:
    got, pos = _take(data, 0, len(magic), "magic")
    if got != magic:
        raise RevocationError(f"expected magic {magic!r}, found {got!r}")
    version, pos = _u8(data, pos)
    if version != FORMAT_VERSION:
        raise RevocationError(f"expected format version {FORMAT_VERSION}, found {version}")
    n, pos = _u8(data, pos)
    if not 2 <= n <= MAX_REGION_BYTES:
        raise RevocationError(f"region length must be 2-{MAX_REGION_BYTES}, found {n}")
    raw, pos = _take(data, pos, n, "region")
    region = raw.decode("ascii", errors="replace")
    if not (region.isascii() and region.isalpha() and region.isupper()):
        raise RevocationError(f"region must be capital letters, found {region!r}")
    return region, pos


def _render_keys(keys: Sequence[bytes]) -> bytes:
    out = [struct.pack(">H", len(keys))]
    for k in keys:
        out.append(struct.pack(">H", len(k)) + k)
    return b"".join(out)


def _parse_keys(data: memoryview, pos: int) -> tuple[tuple[bytes, ...], int]:
    count, pos = _uint(data, pos, ">H", "key entry count")
    if count > MAX_KEY_ENTRIES:
        raise RevocationError(f"at most {MAX_KEY_ENTRIES} key entries, found {count}")
    keys = []
    for _ in range(count):
        n, pos = _uint(data, pos, ">H", "key entry length")
        if not 0 < n <= MAX_KEY_ENTRY_BYTES:
            raise RevocationError(f"key entry length must be 1-{MAX_KEY_ENTRY_BYTES}, found {n}")
        k, pos = _take(data, pos, n, "key entry")
        keys.append(k)
    return tuple(keys), pos


def _render_bitmap(bm: BitMap | FrozenBitMap) -> bytes:
    raw = _bitmap_bytes(BitMap(bm))
    return struct.pack(">I", len(raw)) + raw


def _parse_sized_bitmap(data: memoryview, pos: int, what: str) -> tuple[FrozenBitMap, int]:
    n, pos = _uint(data, pos, ">I", f"{what} length")
    if n > MAX_BITMAP_BYTES:
        raise RevocationError(f"{what} larger than {MAX_BITMAP_BYTES} bytes: {n}")
    raw, pos = _take(data, pos, n, what)
    return FrozenBitMap(_parse_bitmap(raw)), pos


def _parse_tail_bitmap(data: memoryview, pos: int) -> BitMap:
    n, pos = _uint(data, pos, ">I", "bitmap length")
    if n > MAX_BITMAP_BYTES:
        raise RevocationError(f"bitmap larger than {MAX_BITMAP_BYTES} bytes: {n}")
    raw, pos = _take(data, pos, n, "bitmap")
    if pos != len(data):
        raise RevocationError(f"{len(data) - pos} trailing bytes")
    return _parse_bitmap(raw)


@dataclass(frozen=True)
class RevocationSnapshot:
    """A region's revocation state and key entries as of `tree_size` leaves."""

    region: str
    tree_size: int
    revoked: frozenset[int] = field(default_factory=frozenset)
    key_entries: tuple[bytes, ...] = ()
    anchored: FrozenBitMap = field(default_factory=FrozenBitMap)  # anchored status indices

    @classmethod
    def build(
        cls,
        region: str,
        tree_size: int,
        revoked: Iterable[int],
        key_entries: Iterable[bytes],
        anchored: Iterable[int] = (),
    ) -> RevocationSnapshot:
        return cls(
            region, tree_size, frozenset(revoked), tuple(key_entries), FrozenBitMap(anchored)
        )

    def bitmap(self) -> BitMap:
        return BitMap(self.revoked)

    def to_bytes(self) -> bytes:
        if any(not 0 <= i <= MAX_STATUS_INDEX for i in self.revoked):
            raise RevocationError(f"status indices must be 0..{MAX_STATUS_INDEX}")
        bm = _bitmap_bytes(BitMap(self.revoked))
        return b"".join(
            (
                _render_header(SNAPSHOT_MAGIC, self.region),
                struct.pack(">Q", self.tree_size),
                _render_keys(self.key_entries),
                _render_bitmap(self.anchored),
                struct.pack(">I", len(bm)),
                bm,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RevocationSnapshot:
        view = memoryview(data)
        region, pos = _parse_header(view, SNAPSHOT_MAGIC)
        size, pos = _uint(view, pos, ">Q", "tree size")
        keys, pos = _parse_keys(view, pos)
        anchored, pos = _parse_sized_bitmap(view, pos, "anchored bitmap")
        bm = _parse_tail_bitmap(view, pos)
        return cls(region, size, frozenset(bm), keys, anchored)

    def digest(self) -> bytes:
        return snapshot_digest(self.to_bytes())


def snapshot_digest(snapshot_bytes: bytes) -> bytes:
    """The content address of a snapshot: SHA-256 of its canonical bytes."""
    return hashlib.sha256(snapshot_bytes).digest()


def open_snapshot(data: bytes, expected_digest: bytes) -> RevocationSnapshot:
    """Parse snapshot bytes fetched from anywhere, checking them against a committed digest."""
    found = snapshot_digest(data)
    if found != expected_digest:
        raise RevocationError(
            f"snapshot digest mismatch: expected {expected_digest.hex()}, found {found.hex()}"
        )
    return RevocationSnapshot.from_bytes(data)


@dataclass(frozen=True)
class RevocationDelta:
    """What changed between two committed snapshots of one region.

    `flipped` is the XOR of the two revoked sets (a revocation or a reinstatement both
    flip one index); `new_key_entries` are appended to the old snapshot's key entries.
    """

    region: str
    from_size: int
    to_size: int
    from_digest: bytes
    to_digest: bytes
    flipped: frozenset[int]
    new_key_entries: tuple[bytes, ...] = ()
    newly_anchored: FrozenBitMap = field(default_factory=FrozenBitMap)

    def to_bytes(self) -> bytes:
        bm = _bitmap_bytes(BitMap(self.flipped))
        return b"".join(
            (
                _render_header(DELTA_MAGIC, self.region),
                struct.pack(">QQ", self.from_size, self.to_size),
                self.from_digest,
                self.to_digest,
                _render_keys(self.new_key_entries),
                _render_bitmap(self.newly_anchored),
                struct.pack(">I", len(bm)),
                bm,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RevocationDelta:
        view = memoryview(data)
        region, pos = _parse_header(view, DELTA_MAGIC)
        from_size, pos = _uint(view, pos, ">Q", "from size")
        to_size, pos = _uint(view, pos, ">Q", "to size")
        if to_size < from_size:
            raise RevocationError(f"to size {to_size} precedes from size {from_size}")
        from_digest, pos = _take(view, pos, DIGEST_SIZE, "from digest")
        to_digest, pos = _take(view, pos, DIGEST_SIZE, "to digest")
        keys, pos = _parse_keys(view, pos)
        anchored, pos = _parse_sized_bitmap(view, pos, "anchored bitmap")
        bm = _parse_tail_bitmap(view, pos)
        return cls(
            region, from_size, to_size, from_digest, to_digest, frozenset(bm), keys, anchored
        )


def make_delta(old: RevocationSnapshot, new: RevocationSnapshot) -> RevocationDelta:
    """The delta from `old` to `new` (same region, new not older, keys only appended)."""
    if old.region != new.region:
        raise RevocationError(f"region mismatch: {old.region} vs {new.region}")
    if new.tree_size < old.tree_size:
        raise RevocationError(f"new size {new.tree_size} precedes old size {old.tree_size}")
    if new.key_entries[: len(old.key_entries)] != old.key_entries:
        raise RevocationError("key entries were rewritten, not appended")
    if not old.anchored <= new.anchored:
        raise RevocationError("anchored indices were removed: an anchor is forever")
    return RevocationDelta(
        old.region,
        old.tree_size,
        new.tree_size,
        old.digest(),
        new.digest(),
        old.revoked ^ new.revoked,
        new.key_entries[len(old.key_entries) :],
        new.anchored - old.anchored,
    )


def apply_delta(old: RevocationSnapshot, delta: RevocationDelta) -> RevocationSnapshot:
    """Apply a delta; raise unless it starts at `old` and lands exactly on its to-digest."""
    if delta.region != old.region or delta.from_size != old.tree_size:
        raise RevocationError(
            f"delta starts at {delta.region}@{delta.from_size}, "
            f"snapshot is {old.region}@{old.tree_size}"
        )
    if delta.from_digest != old.digest():
        raise RevocationError("delta does not start from this snapshot (digest mismatch)")
    new = RevocationSnapshot(
        old.region,
        delta.to_size,
        old.revoked ^ delta.flipped,
        old.key_entries + delta.new_key_entries,
        old.anchored | delta.newly_anchored,
    )
    found = new.digest()
    if found != delta.to_digest:
        raise RevocationError(
            f"delta result digest mismatch: expected {delta.to_digest.hex()}, found {found.hex()}"
        )
    return new


def render_extension(digest: bytes) -> str:
    """The checkpoint extension line committing a snapshot digest (tlog-checkpoint §note
    text: extension lines follow the root hash)."""
    if len(digest) != DIGEST_SIZE:
        raise RevocationError(f"digest must be {DIGEST_SIZE} bytes, found {len(digest)}")
    return REVOCATION_EXTENSION_PREFIX + base64.b64encode(digest).decode()


def find_extension(extensions: Iterable[str]) -> bytes | None:
    """The committed snapshot digest among a checkpoint's extension lines, if any."""
    found = [e for e in extensions if e.startswith(REVOCATION_EXTENSION_PREFIX)]
    if not found:
        return None
    if len(found) > 1:
        raise RevocationError(f"expected one revocation extension line, found {len(found)}")
    try:
        digest = base64.b64decode(found[0][len(REVOCATION_EXTENSION_PREFIX) :], validate=True)
    except ValueError as e:
        raise RevocationError("revocation extension is not base64") from e
    if len(digest) != DIGEST_SIZE:
        raise RevocationError(f"expected a {DIGEST_SIZE}-byte digest, found {len(digest)}")
    return digest
