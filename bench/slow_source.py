"""Benchmark: one sync pass against a region node that answers every request correctly
but slowly, with a fast mirror of the same log beside it.

Prints progress lines, then one JSON object on the last line:

- pass_unbounded_s: the pass with no per-source pace (the sync client before
  `SourcePace`): the slow node, first among equals, serves every entry bundle;
- pass_paced_s: the same pass with `SourcePace` scaled to the bench's delay
  (PACE below): the node is abandoned after `min_s`, the mirror serves the rest;
- ceiling_fast_s: the same sync from the fast mirror alone, measured in the same run;
- hostile_*: the same pass from a node that is as slow and serves every entry bundle
  wrong (leaves rotated), the fast mirror after it: the pass time, the bundles the
  node served, and the bundles the mirror served (`BUNDLES` when nothing is fetched
  twice);
- default_pace_*: with the shipped defaults (ledger.clients.sync.SOURCE_*) and the
  attack's own numbers (each answer just under the 10 s request timeout, a region of
  1,000,000 entries), how long the slow node holds one pass, computed with
  `SourcePace.check` request by request (no waiting: hours of it otherwise).

Everything is served over loopback HTTP (werkzeug, threaded), read by the real
`HttpLogSource` and staged in a SQLite file in a temporary directory.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python bench/slow_source.py` from a checkout

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

from common.serving import serve_in_thread  # noqa: E402
from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der  # noqa: E402
from ledger.clients.reader import DEFAULT_TIMEOUT_S  # noqa: E402
from ledger.clients.sync import (  # noqa: E402
    HttpLogSource,
    SlowSourceError,
    SourcePace,
    SyncClient,
)
from ledger.log.checkpoint import Checkpoint, attach_signatures, cosign, cosignature_vkey  # noqa: E402
from ledger.log.checkpoint import signed_checkpoint as sign_cp  # noqa: E402
from ledger.log.consortium import Consortium, build_consortium  # noqa: E402
from ledger.log.entries import (  # noqa: E402
    CredentialAnchored,
    KeyAdded,
    TimestampedEntry,
    encode_entry,
    encode_leaf,
    sign_key_entry,
)
from ledger.log.merkle import leaf_hash, root_hash  # noqa: E402
from ledger.log.note import NoteSigner  # noqa: E402
from ledger.log.tiles import TileId, encode_entry_bundle, tiles_of_tree  # noqa: E402

BUNDLES = 40  # entry bundles in GD's log (10,240 entries)
DELAY_S = 0.25  # seconds the slow node holds each answer
PACE = SourcePace(min_s=1.0, max_avg_s=0.1, cap_s=5.0)  # the defaults' shape, scaled
UNBOUNDED = SourcePace(min_s=1e9, max_avg_s=1e9, cap_s=1e9)
ATTACK_ANSWER_S = DEFAULT_TIMEOUT_S - 0.1  # just under the reader's request timeout
ATTACK_ENTRIES = 1_000_000


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _log() -> tuple[Consortium, list[bytes], bytes]:
    origin = "gd.bench/log"
    log_signer = NoteSigner.from_skey(NoteSigner.generate(origin)[0])
    mo_log = NoteSigner.from_skey(NoteSigner.generate("mo.bench/log")[0])
    wits = [NoteSigner.from_skey(NoteSigner.generate(f"{r}.bench/w")[0]) for r in ("gd", "mo")]
    root_key = Ed25519PrivateKey.generate()
    root_raw = root_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    members = [
        {"id": mid, "name": mid, "log_origin": signer.name, "log_vkey": signer.verifier().vkey(),
         "root_public_key": root_raw, "witness_vkey": cosignature_vkey(w),
         "node_url": f"http://127.0.0.1:{9000 + i}"}
        for i, (mid, signer, w) in enumerate(
            zip(("GD", "MO"), (log_signer, mo_log), wits, strict=True)
        )
    ]  # fmt: skip
    consortium = build_consortium(members)
    issuer = generate_private_key()
    der = public_key_der(issuer)
    kid = key_id(der)
    ts = 1_700_000_000_000
    entries: list[object] = [
        sign_key_entry(KeyAdded("GD", kid, SigningAlg.ES256, der, 0, None), root_key)
    ]
    entries += [
        CredentialAnchored("GD", i.to_bytes(32, "big"), i, kid, 4_000_000_000)
        for i in range(1, BUNDLES * 256)
    ]
    leaves = [encode_leaf(TimestampedEntry(ts, encode_entry(e))) for e in entries]  # type: ignore[arg-type]
    cp = Checkpoint(origin, len(leaves), root_hash([leaf_hash(x) for x in leaves]))
    note = attach_signatures(sign_cp(cp, log_signer), [cosign(cp, w, ts // 1000) for w in wits])
    return consortium, leaves, note


@contextmanager
def serve(
    leaves: list[bytes],
    note: bytes,
    delay_s: float,
    wrong: bool = False,
    record: list[int] | None = None,
) -> Iterator[str]:
    """The node's tlog-tiles read paths over loopback HTTP, each answer held delay_s;
    `wrong`: every entry bundle's leaves rotated by one (well formed, not the logged
    ones); `record` collects the index of every bundle served."""  # fmt: skip
    from flask import Flask, Response

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = Flask("bench-slow-source")
    hash_tiles = tiles_of_tree([leaf_hash(x) for x in leaves])

    @app.get("/checkpoint")
    def checkpoint() -> Response:
        time.sleep(delay_s)
        return Response(note, mimetype="text/plain")

    @app.get("/tile/entries/<path:rest>")
    def bundle(rest: str) -> Response:
        time.sleep(delay_s)
        n, _, w = rest.partition(".p/")
        index = int(n.replace("x", "").replace("/", ""))
        width = int(w) if w else 256
        if record is not None:
            record.append(index)
        if wrong:
            chunk = leaves[index * 256 : index * 256 + width]
            return Response(encode_entry_bundle(chunk[1:] + chunk[:1]))
        return Response(encode_entry_bundle(leaves[index * 256 : index * 256 + width]))

    @app.get("/tile/<int:level>/<path:rest>")
    def tile(level: int, rest: str) -> Response:
        time.sleep(delay_s)
        t = TileId.parse_path(f"tile/{level}/{rest}")
        return Response(hash_tiles[(t.level, t.index)][: t.width * 32])

    with serve_in_thread(app) as served:
        yield served.url


def one_pass(
    consortium: Consortium, urls: list[str], pace: SourcePace, db: Path
) -> tuple[float, str | None]:
    client = SyncClient(
        consortium, db, sources=lambda r: [HttpLogSource(u) for u in urls], pace=pace
    )
    try:
        t0 = time.perf_counter()
        report = client.sync("GD").region("GD")
        took = time.perf_counter() - t0
    finally:
        client.close()
    assert report.new_size == BUNDLES * 256, report
    return took, report.source


def default_pace_hold_s() -> tuple[int, float]:
    """Requests the shipped pace lets an ATTACK_ANSWER_S source make, and their time."""
    pace = SourcePace()
    requests, spent = 0, 0.0
    while True:
        try:
            pace.check(requests, spent)
        except SlowSourceError:
            return requests, spent
        requests += 1
        spent += ATTACK_ANSWER_S


def main() -> None:
    consortium, leaves, note = _log()
    say(f"GD log: {len(leaves):,} entries, {BUNDLES} bundles; slow node {DELAY_S} s per answer")
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(leaves, note, DELAY_S) as slow,
        serve(leaves, note, 0.0) as fast,
    ):
        ceiling, _ = one_pass(consortium, [fast], PACE, Path(tmp) / "ceiling.db")
        say(f"fast mirror alone: {ceiling:.2f} s")
        unbounded, src_u = one_pass(consortium, [slow, fast], UNBOUNDED, Path(tmp) / "u.db")
        say(f"no pace: {unbounded:.2f} s, GD from {'the slow node' if src_u == slow else src_u}")
        paced, src_p = one_pass(consortium, [slow, fast], PACE, Path(tmp) / "p.db")
        say(f"with {PACE}: {paced:.2f} s, GD from {'the mirror' if src_p == fast else src_p}")
    # A hostile node: slow, and every bundle it serves wrong; the fast mirror after it.
    from_hostile: list[int] = []
    from_mirror: list[int] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(leaves, note, DELAY_S, wrong=True, record=from_hostile) as hostile,
        serve(leaves, note, 0.0, record=from_mirror) as mirror,
    ):
        hostile_s, src_h = one_pass(consortium, [hostile, mirror], PACE, Path(tmp) / "h.db")
    say(f"hostile node then mirror: {hostile_s:.2f} s, GD from "
        f"{'the mirror' if src_h == mirror else src_h}; bundles served: hostile "
        f"{len(from_hostile)}, mirror {len(from_mirror)} of {BUNDLES}")  # fmt: skip
    requests, held = default_pace_hold_s()
    attack_requests = 1 + -(-ATTACK_ENTRIES // 256)  # checkpoint + every bundle
    result = {
        "bundles": BUNDLES,
        "delay_s": DELAY_S,
        "pace": {"min_s": PACE.min_s, "max_avg_s": PACE.max_avg_s, "cap_s": PACE.cap_s},
        "pass_unbounded_s": round(unbounded, 2),
        "pass_paced_s": round(paced, 2),
        "ceiling_fast_s": round(ceiling, 2),
        "paced_source_is_mirror": src_p == fast,
        "hostile_pass_s": round(hostile_s, 2),
        "hostile_bundles_served": len(from_hostile),
        "hostile_pass_mirror_bundles": len(from_mirror),
        "default_pace_attack_answer_s": ATTACK_ANSWER_S,
        "default_pace_slow_requests": requests,
        "default_pace_hold_s": round(held, 1),
        "unbounded_attack_hold_s": round(attack_requests * ATTACK_ANSWER_S, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
