"""Benchmark: compact revocation state sizes and station sync speed.

Prints progress lines, then one JSON object on the last line:

- revocation_state_bytes: a region's full revocation snapshot (ledger.log.revocation,
  format 2) with 10,000,000 anchored credentials, 1 % (100,000) revoked at random
  status indices, plus 8 key entries, and the anchored index set (every index below
  10,000,000 but 0.1 % holes, see compact_anchor_check_bytes);
- daily_delta_bytes: one day's snapshot delta at 1 % churn, churn meaning the share of
  the revocation state (the revoked set) that changes in a day: 1 % of 100,000 revoked
  = 1,000 status flips (half reinstatements, half new revocations) at random status
  indices, random being the worst case for a bitmap. `delta_bytes_by_flips` also gives
  10,000 and 100,000 flips (the latter is 1 % of all credentials flipping in a day);
- plain_hash_list_bytes: the same revoked set as a plain list of 16-byte hashes (as
  EU DCC revocation lists ship it);
- compact_anchor_check_bytes: what a compact-mode station would download to check
  that a credential is on its region's log, at 10,000,000 anchored credentials, for
  each candidate check: the anchored status indices as a run-optimised Roaring bitmap
  (dense allocation: one run, plus 0.1 % indices never anchored, e.g. reserved by a
  crashed issuance, as holes), and per-index digest fingerprints of 16 and 32 bits;
  with the daily growth at 100,000 new credentials a day;
- sync_100k_entries_s: a station syncing 100,000 new entries from an in-memory source
  over loopback HTTP, everything included (checkpoint signature, cosignature quorum,
  each entry bundle checked against the checkpoint's hash tiles as it arrives, staging
  in SQLite, root recomputation, entry decoding, state update), with
  `ceiling_hash_decode_s` (hashing + decoding the same leaves and nothing else)
  measured in the same run; `sync_requests` counts what the pass asked for by kind,
  and `tile_check_s` is the checking of every bundle against the tiles
  (ledger.log.tree_tiles) alone, timed in the same run on the same leaves: the extra
  work of checking bundles as they arrive, besides the tile requests.

`--full-sync-only` runs the full-mode sync figures alone (seconds, not minutes).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python bench/sync.py` from a checkout

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402
from pyroaring import BitMap, FrozenBitMap  # noqa: E402

from common.serving import serve_in_thread  # noqa: E402
from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der  # noqa: E402
from ledger.clients.sync import HttpLogSource, SyncClient, SyncedTrustState  # noqa: E402
from ledger.log.checkpoint import Checkpoint, attach_signatures, cosign, cosignature_vkey  # noqa: E402
from ledger.log.checkpoint import signed_checkpoint as sign_cp  # noqa: E402
from ledger.log.consortium import build_consortium  # noqa: E402
from ledger.log.entries import (  # noqa: E402
    CredentialAnchored,
    CredentialRevoked,
    KeyAdded,
    RevocationReason,
    TimestampedEntry,
    decode_entry,
    encode_entry,
    encode_leaf,
    sign_key_entry,
)
from ledger.log.merkle import leaf_hash, root_hash  # noqa: E402
from ledger.log.note import NoteSigner  # noqa: E402
from ledger.log.revocation import RevocationSnapshot, make_delta, render_extension, snapshot_digest  # noqa: E402  # noqa: E402
from ledger.log.tiles import TileId, encode_entry_bundle, tiles_of_tree  # noqa: E402
from ledger.log.tree_tiles import CheckpointTiles  # noqa: E402

POPULATION = 10_000_000  # anchored credentials in the region
REVOKED_FRACTION = 0.01  # 1 % revoked
DAILY_FLIPS = 1_000  # status flips per day: 1 % of the revoked set (docstring)
SYNC_ENTRIES = 100_000  # entries a station syncs in the timed run
HASH_PREFIX_BYTES = 16  # bytes per entry in a plain hash list (EU DCC style)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def anchored_population(rng: random.Random) -> FrozenBitMap:
    """Every status index below POPULATION anchored, except ANCHOR_HOLE_FRACTION."""
    anchored = BitMap(range(POPULATION))
    for i in rng.sample(range(POPULATION), int(POPULATION * ANCHOR_HOLE_FRACTION)):
        anchored.discard(i)
    return FrozenBitMap(anchored)


def revocation_sizes() -> dict[str, object]:
    rng = random.Random(2024)
    revoked = set(rng.sample(range(POPULATION), int(POPULATION * REVOKED_FRACTION)))
    keys = tuple(bytes(300) for _ in range(8))  # key entries are ~300 bytes each
    anchored = anchored_population(rng)
    t0 = time.perf_counter()
    snap = RevocationSnapshot("GD", POPULATION + 10, frozenset(revoked), keys, anchored)
    data = snap.to_bytes()
    encode_s = time.perf_counter() - t0
    say(f"snapshot: {len(data):,} bytes for {len(revoked):,} revoked of {POPULATION:,}")
    by_flips: dict[str, int] = {}
    headline = 0
    for flips in (1_000, DAILY_FLIPS, 100_000):
        changed = set(revoked)
        revoked_list = sorted(revoked)
        # Half reinstatements of revoked indices, half new revocations.
        for i in rng.sample(revoked_list, flips // 2):
            changed.discard(i)
        while len(changed) < len(revoked) - flips // 2 + flips - flips // 2:
            changed.add(rng.randrange(POPULATION))
        new = RevocationSnapshot("GD", POPULATION + 20, frozenset(changed), keys, anchored)
        size = len(make_delta(snap, new).to_bytes())
        by_flips[str(flips)] = size
        if flips == DAILY_FLIPS:
            headline = size
        say(f"delta for {flips:,} flips: {size:,} bytes")
    return {
        "revocation_state_bytes": len(data),
        "revocation_state_encode_s": round(encode_s, 3),
        "daily_delta_bytes": headline,
        "daily_flips": DAILY_FLIPS,
        "delta_bytes_by_flips": by_flips,
        "plain_hash_list_bytes": len(revoked) * HASH_PREFIX_BYTES,
    }


ANCHOR_HOLE_FRACTION = 0.001  # indices allocated but never anchored (crashed issuance)
DAILY_NEW_CREDENTIALS = 100_000  # credentials anchored per day in the region


def anchor_check_sizes() -> dict[str, object]:
    """Bytes of the candidate compact-mode anchoring checks; the anchored index bitmap is
    the one chosen (ledger.log.revocation format 2, docs/threat-model.md)."""
    from pyroaring import BitMap

    rng = random.Random(11)
    t0 = time.perf_counter()
    anchored = BitMap(range(POPULATION))
    for i in rng.sample(range(POPULATION), int(POPULATION * ANCHOR_HOLE_FRACTION)):
        anchored.discard(i)
    anchored.run_optimize()
    dense = len(anchored.serialize())
    contiguous = BitMap(range(POPULATION))
    contiguous.run_optimize()
    one_run = len(contiguous.serialize())
    day = BitMap(range(POPULATION, POPULATION + DAILY_NEW_CREDENTIALS))
    day.run_optimize()
    daily = len(day.serialize())
    build_s = time.perf_counter() - t0
    out = {
        "anchored_index_bitmap_bytes": dense,
        "anchored_index_bitmap_no_holes_bytes": one_run,
        "anchored_index_bitmap_daily_delta_bytes": daily,
        "fingerprint_16bit_bytes": POPULATION * 2,
        "fingerprint_32bit_bytes": POPULATION * 4,
        "fingerprint_32bit_daily_delta_bytes": DAILY_NEW_CREDENTIALS * 4,
        "build_s": round(build_s, 3),
    }
    say(f"anchor check: index bitmap {dense:,} B ({one_run:,} B without holes), "
        f"16-bit fingerprints {POPULATION * 2:,} B, 32-bit {POPULATION * 4:,} B")  # fmt: skip
    return {"compact_anchor_check_bytes": out}


@dataclass
class _Source:
    leaves: list[bytes]
    note: bytes
    snapshots: dict[str, bytes] = field(default_factory=dict)
    name: str = "memory"
    tiles: dict[tuple[int, int], bytes] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tiles = tiles_of_tree([leaf_hash(x) for x in self.leaves]) if self.leaves else {}

    def checkpoint(self) -> bytes:
        return self.note

    def tile(self, level: int, index: int, width: int) -> bytes:
        return self.tiles[(level, index)][: width * 32]

    def entry_bundle(self, index: int, width: int) -> bytes:
        return encode_entry_bundle(self.leaves[index * 256 : index * 256 + width])


@contextmanager
def serve_http(source: _Source) -> Iterator[str]:
    """Serve a source over loopback HTTP with the node's read paths (tlog-tiles
    checkpoint and entry bundles, revocation snapshots): what a station really reads."""
    from flask import Flask, Response

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = Flask("bench-source")

    def count(kind: str) -> None:
        source.requests[kind] = source.requests.get(kind, 0) + 1

    @app.get("/checkpoint")
    def checkpoint() -> Response:
        count("checkpoint")
        return Response(source.checkpoint(), mimetype="text/plain")

    @app.get("/tile/entries/<path:rest>")
    def bundle(rest: str) -> Response:
        count("bundle")
        n, _, w = rest.partition(".p/")
        index = int(n.replace("x", "").replace("/", ""))
        return Response(source.entry_bundle(index, int(w) if w else 256))

    @app.get("/tile/<int:level>/<path:rest>")
    def tile(level: int, rest: str) -> Response:
        count("tile")
        t = TileId.parse_path(f"tile/{level}/{rest}")
        return Response(source.tile(t.level, t.index, t.width))

    @app.get("/revocation/snapshot/<digest>")
    def snapshot(digest: str) -> Response:
        return Response(source.snapshots[digest])

    with serve_in_thread(app) as served:
        yield served.url


def tile_check_s(leaves: list[bytes], root: bytes, tiles: dict[tuple[int, int], bytes]) -> float:
    """The checks of a full sync of `leaves` against the tiles, without I/O."""
    t0 = time.perf_counter()
    checked = CheckpointTiles(len(leaves), root)
    checked.add_right_edge({(t.level, t.index): tiles[(t.level, t.index)][: t.width * 32]
                            for t in checked.right_edge()})  # fmt: skip
    for b in range((len(leaves) + 255) // 256):
        for t in checked.needed_for_bundle(b):
            checked.add(t, tiles[(t.level, t.index)])
        checked.check_bundle(b, leaves[b * 256 : (b + 1) * 256])
    return time.perf_counter() - t0


def sync_speed(full_only: bool = False) -> dict[str, object]:
    origin = "gd.bench/log"
    log_signer = NoteSigner.from_skey(NoteSigner.generate(origin)[0])
    wits = [NoteSigner.from_skey(NoteSigner.generate(f"{r}.bench/w")[0]) for r in ("gd", "mo")]
    root_key = Ed25519PrivateKey.generate()
    root_raw = root_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    members = []
    for i, (mid, w) in enumerate(zip(("GD", "MO"), wits, strict=True)):
        log_skey = log_signer if mid == "GD" else NoteSigner.from_skey(
            NoteSigner.generate("mo.bench/log")[0]
        )  # fmt: skip
        members.append(
            {"id": mid, "name": mid, "log_origin": log_skey.name,
             "log_vkey": log_skey.verifier().vkey(), "root_public_key": root_raw,
             "witness_vkey": cosignature_vkey(w), "node_url": f"http://127.0.0.1:{9000 + i}"}
        )  # fmt: skip
    consortium = build_consortium(members)
    issuer = generate_private_key()
    der = public_key_der(issuer)
    kid = key_id(der)
    ts = 1_700_000_000_000
    entries = [sign_key_entry(KeyAdded("GD", kid, SigningAlg.ES256, der, 0, None), root_key)]
    for i in range(SYNC_ENTRIES - 1):
        if i % 100 == 99:
            entries.append(CredentialRevoked("GD", i - 50, RevocationReason.FRAUD, ts // 1000))
        else:
            entries.append(CredentialAnchored("GD", i.to_bytes(32, "big"), i, kid, 4_000_000_000))
    leaves = [encode_leaf(TimestampedEntry(ts, encode_entry(e))) for e in entries]
    say(f"built {len(leaves):,} leaves")
    # Ceiling: hash and decode every leaf, nothing else.
    t0 = time.perf_counter()
    hashes = [leaf_hash(x) for x in leaves]
    for x in leaves:
        decode_entry(x[9:])  # one decode per entry: what the station cannot avoid
    ceiling = time.perf_counter() - t0
    cp = Checkpoint(origin, len(leaves), root_hash(hashes))
    note = attach_signatures(sign_cp(cp, log_signer), [cosign(cp, w, ts // 1000) for w in wits])
    source = _Source(leaves, note)
    with tempfile.TemporaryDirectory() as tmp, serve_http(source) as url:
        http = HttpLogSource(url)
        client = SyncClient(consortium, Path(tmp) / "station.db", sources=lambda r: [http])
        t0 = time.perf_counter()
        report = client.sync("GD")
        elapsed = time.perf_counter() - t0
        client.close()
    assert report.region("GD").new_size == SYNC_ENTRIES, report
    say(f"synced {SYNC_ENTRIES:,} entries over HTTP in {elapsed:.2f} s (ceiling {ceiling:.2f} s)")
    say(f"requests: {source.requests}")
    check_s = tile_check_s(leaves, cp.root_hash, source.tiles)
    say(f"checking every bundle against the tiles alone: {check_s:.3f} s")
    result: dict[str, object] = {
        "sync_100k_entries_s": round(elapsed, 3),
        "ceiling_hash_decode_s": round(ceiling, 3),
        "sync_entries_per_s": int(SYNC_ENTRIES / elapsed),
        "sync_requests": dict(sorted(source.requests.items())),
        "tile_check_s": round(check_s, 3),
    }
    if not full_only:
        result.update(compact_sync(consortium, log_signer, wits, entries[0], ts // 1000))
    return result


def compact_sync(consortium, log_signer, wits, key_entry, ts_s) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A station syncing a 10M-credential region (1 % revoked) in compact mode from
    scratch over loopback HTTP: checkpoint, quorum, snapshot digest check, state write."""
    rng = random.Random(7)
    revoked = rng.sample(range(POPULATION), int(POPULATION * REVOKED_FRACTION))
    snap = RevocationSnapshot(
        "GD",
        POPULATION,
        frozenset(revoked),
        (encode_entry(key_entry),),
        anchored_population(rng),
    )
    data = snap.to_bytes()
    digest = snapshot_digest(data)
    # The root is not re-derived in compact mode (the witnesses did): any 32 bytes do.
    cp = Checkpoint("gd.bench/log", POPULATION, bytes(32), (render_extension(digest),))
    note = attach_signatures(sign_cp(cp, log_signer), [cosign(cp, w, ts_s) for w in wits])
    source = _Source([], note, {digest.hex(): data})
    with tempfile.TemporaryDirectory() as tmp, serve_http(source) as url:
        http = HttpLogSource(url)
        client = SyncClient(
            consortium, Path(tmp) / "compact.db", sources=lambda r: [http], compact=True
        )
        t0 = time.perf_counter()
        report = client.sync("GD")
        elapsed = time.perf_counter() - t0
        client.close()
        state = SyncedTrustState(Path(tmp) / "compact.db")
        assert state.is_revoked("GD", revoked[0])
        state.close()
    assert report.region("GD").new_size == POPULATION, report
    say(f"compact sync of a {POPULATION:,}-credential region in {elapsed:.2f} s "
        f"({len(data):,} snapshot bytes)")  # fmt: skip
    return {"compact_sync_10m_s": round(elapsed, 3), "compact_snapshot_bytes": len(data)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full-sync-only", action="store_true")
    args = parser.parse_args()
    if args.full_sync_only:
        print(json.dumps(sync_speed(full_only=True)))
        return
    result: dict[str, object] = {"population": POPULATION, "revoked_fraction": REVOKED_FRACTION}
    result.update(revocation_sizes())
    result.update(anchor_check_sizes())
    result.update(sync_speed())
    result["goals"] = {
        "revocation_state_bytes": 300_000,
        "daily_delta_bytes": 30_000,
        "sync_100k_entries_s": 5.0,
        "compact_sync_10m_s": 5.0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
