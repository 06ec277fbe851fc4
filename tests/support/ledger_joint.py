"""Shared builders for the joint-operation tests: keys, a consortium, a log in memory.

No tests here; the witness, mirror, sync and integration tests import these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.log.checkpoint import Checkpoint, cosignature_vkey, signed_checkpoint
from ledger.log.consortium import Consortium, build_consortium
from ledger.log.merkle import consistency_path, leaf_hash, root_hash
from ledger.log.note import NoteSigner


@dataclass
class MemberKeys:
    id: str
    log_signer: NoteSigner
    witness_signer: NoteSigner
    root_key: Ed25519PrivateKey
    port: int
    witness_only: bool = False

    @property
    def origin(self) -> str:
        return f"{self.id.lower()}.healthbridge.test/log"

    def root_public_raw(self) -> bytes:
        return self.root_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def table(self) -> dict[str, object]:
        d: dict[str, object] = {
            "id": self.id,
            "name": f"Region {self.id}",
            "witness_vkey": cosignature_vkey(self.witness_signer),
            "node_url": f"http://127.0.0.1:{self.port}",
        }
        if self.witness_only:
            d["witness_only"] = True
        else:
            d["log_origin"] = self.origin
            d["log_vkey"] = self.log_signer.verifier().vkey()
            d["root_public_key"] = self.root_public_raw()
        return d


def member_keys(mid: str, port: int = 0, witness_only: bool = False) -> MemberKeys:
    port = port or 20000 + sum(ord(c) for c in mid)
    origin = f"{mid.lower()}.healthbridge.test/log"
    log_skey, _ = NoteSigner.generate(origin)
    w_skey, _ = NoteSigner.generate(f"{mid.lower()}.healthbridge.test/witness")
    return MemberKeys(
        mid,
        NoteSigner.from_skey(log_skey),
        NoteSigner.from_skey(w_skey),
        Ed25519PrivateKey.generate(),
        port,
        witness_only,
    )


def consortium_of(*members: MemberKeys, threshold: int | str = "all") -> Consortium:
    return build_consortium([m.table() for m in members], threshold=threshold)


def write_key(path: Path, text: str) -> Path:
    path.write_text(text + "\n", encoding="ascii")
    path.chmod(0o600)
    return path


@dataclass
class MemoryLog:
    """A toy log: leaf bytes in a list, checkpoints signed on demand."""

    keys: MemberKeys
    leaves: list[bytes] = field(default_factory=list)

    def hashes(self, size: int | None = None) -> list[bytes]:
        return [leaf_hash(x) for x in self.leaves[: size if size is not None else None]]

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        n = len(self.leaves) if size is None else size
        return Checkpoint(self.keys.origin, n, root_hash(self.hashes(n)))

    def signed(self, size: int | None = None) -> bytes:
        return signed_checkpoint(self.checkpoint(size), self.keys.log_signer)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        n = len(self.leaves) if new is None else new
        if old == 0 or old == n:
            return []
        return consistency_path(old, self.hashes(n))


# -- a region's log with real entries, in memory ---------------------------------------


def key_added(keys: MemberKeys, issuer_key, not_before: int = 1_600_000_000):
    from credential.keys import SigningAlg, key_id, public_key_der
    from ledger.log.entries import KeyAdded, sign_key_entry

    der = public_key_der(issuer_key)
    entry = KeyAdded(keys.id, key_id(der), SigningAlg.ES256, der, not_before, None)
    return sign_key_entry(entry, keys.root_key)


def leaf_of(entry, timestamp_ms: int = 1_700_000_000_000) -> bytes:
    from ledger.log.entries import TimestampedEntry, encode_entry, encode_leaf

    return encode_leaf(TimestampedEntry(timestamp_ms, encode_entry(entry)))


@dataclass
class MemorySource:
    """A LogSource over a MemoryLog, cosigned by the given witnesses."""

    log: MemoryLog
    cosigners: list[MemberKeys]
    name: str = "memory"
    timestamp: int = 1_700_000_000
    down: bool = False
    bundle_calls: int = 0
    tile_calls: int = 0
    _tiles: tuple[int, dict[tuple[int, int], bytes]] | None = None

    def checkpoint(self) -> bytes:
        from ledger.log.checkpoint import attach_signatures, cosign

        if self.down:
            from ledger.clients.sync import SourceError

            raise SourceError(f"{self.name} is down")
        cp = self.log.checkpoint()
        lines = [cosign(cp, w.witness_signer, self.timestamp) for w in self.cosigners]
        return attach_signatures(self.log.signed(), lines)

    def tile(self, level: int, index: int, width: int = 256) -> bytes:
        """The hash tile of the log's current tree (C2SP tlog-tiles), cut to `width`."""
        from ledger.log.tiles import tiles_of_tree

        self.tile_calls += 1
        if self._tiles is None or self._tiles[0] != len(self.log.leaves):
            self._tiles = (len(self.log.leaves), tiles_of_tree(self.log.hashes()))
        data = self._tiles[1].get((level, index), b"")
        if len(data) < width * 32:
            from ledger.clients.sync import SourceError

            raise SourceError(f"{self.name} has no tile {level}/{index} of width {width}")
        return data[: width * 32]

    def entry_bundle(self, index: int, width: int) -> bytes:
        from ledger.log.tiles import encode_entry_bundle

        self.bundle_calls += 1
        start = index * 256
        return encode_entry_bundle(self.log.leaves[start : start + width])
