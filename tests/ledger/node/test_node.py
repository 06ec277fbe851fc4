"""The ledger node over real HTTP: authenticated submissions, tiles, proofs, audit, fuzz."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ledger.clients.audit import AuditError, MemoryFetcher, audit_log
from ledger.clients.client import (
    LedgerClient,
    LedgerRefusedError,
    LedgerResponseError,
    authorization,
)
from ledger.log.checkpoint import open_checkpoint
from ledger.log.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.log.rules import Rule
from ledger.log.tiles import decode_entry_bundle
from ledger.node.app import EXTENSION_KEY, create_app, initial_state_for
from ledger.testing import (
    REGION,
    NodeKeys,
    anchor,
    key_added,
    make_config,
    make_keys,
    serve,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, NodeKeys]]:
    keys = make_keys(tmp_path)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    app = create_app(make_config(keys, url, delay_s=0.02))
    try:
        with serve(app) as base:
            yield base, keys
    finally:
        app.extensions[EXTENSION_KEY].sequencer.stop()
        app.extensions[EXTENSION_KEY].store.dispose()


def _fill(base: str, keys: NodeKeys, n: int) -> LedgerClient:
    client = LedgerClient(base, keys.writer, timeout=10)
    client.submit([key_added(keys)])
    for start in range(0, n, 200):
        client.submit([anchor(keys, i) for i in range(start, min(n, start + 200))])
    return client


def test_submitted_entries_are_provably_included_and_consistent(live) -> None:
    base, keys = live
    client = _fill(base, keys, 600)
    cp = open_checkpoint(client.checkpoint(), keys.signer.verifier()).checkpoint
    assert cp.size == 601
    bundle = decode_entry_bundle(client.entry_bundle(2, 601 - 512))
    idx = 512 + 17
    proof = client.inclusion_proof(idx, cp.size)
    verify_inclusion(leaf_hash(bundle[17]), idx, cp.size, proof, cp.root_hash)
    # By entry hash, as an issuer holding only its receipt would ask.
    r = client.submit([anchor(keys, 5)])[0]
    index, proof2 = client.inclusion_proof_by_hash(r.entry_hash, cp.size)
    assert index == r.index == 6
    verify_inclusion(
        leaf_hash(decode_entry_bundle(client.entry_bundle(0))[6]),
        6,
        cp.size,
        proof2,
        cp.root_hash,
    )
    old = cp
    client.submit([anchor(keys, 10_000)])
    new = open_checkpoint(client.checkpoint(), keys.signer.verifier()).checkpoint
    verify_consistency(
        old.size,
        new.size,
        old.root_hash,
        new.root_hash,
        client.consistency_proof(old.size, new.size),
    )


def test_full_tiles_are_immutable_and_partials_short_lived(live) -> None:
    base, keys = live
    _fill(base, keys, 300)
    full = requests.get(f"{base}/tile/0/000", timeout=5)
    assert full.status_code == 200 and len(full.content) == 8192
    assert "immutable" in full.headers["Cache-Control"]
    part = requests.get(f"{base}/tile/0/001.p/45", timeout=5)
    assert part.status_code == 200 and len(part.content) == 45 * 32
    assert "immutable" not in part.headers["Cache-Control"]
    assert requests.get(f"{base}/tile/0/001", timeout=5).status_code == 404
    assert requests.get(f"{base}/tile/0/001.p/46", timeout=5).status_code == 404
    cp = requests.get(f"{base}/checkpoint", timeout=5)
    assert "immutable" not in cp.headers["Cache-Control"]


def test_cache_revalidates_checkpoint_and_partial_tile_with_etag(live) -> None:
    """A cache holding the short-lived answers asks again with If-None-Match and gets
    304 without the body while nothing changed; a changed tile gets a new tag."""
    base, keys = live
    _fill(base, keys, 300)
    for path in ("checkpoint", "tile/0/001.p/44", "tile/entries/000", "tile/0/000"):
        first = requests.get(f"{base}/{path}", timeout=5)
        tag = first.headers["ETag"]
        again = requests.get(f"{base}/{path}", headers={"If-None-Match": tag}, timeout=5)
        assert again.status_code == 304 and again.content == b"", path
        assert again.headers["ETag"] == tag
    other = requests.get(f"{base}/tile/0/001.p/43", timeout=5).headers["ETag"]
    assert other != requests.get(f"{base}/tile/0/001.p/44", timeout=5).headers["ETag"]


def test_writer_signature_is_required(live) -> None:
    base, keys = live
    body = json.dumps({"entries": [base64.b64encode(key_added(keys)).decode()]}).encode()
    r = requests.post(f"{base}/v1/entries", data=body, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    # Signed by a key the node does not list.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = Ed25519PrivateKey.generate()
    auth = authorization(stranger, keys.signer.name, body, int(__import__("time").time()))
    r = requests.post(f"{base}/v1/entries", data=body, headers={"Authorization": auth}, timeout=5)
    assert r.status_code == 401
    # A valid signature over another body does not authorise this body.
    auth = authorization(keys.writer, keys.signer.name, b"{}", int(__import__("time").time()))
    r = requests.post(f"{base}/v1/entries", data=body, headers={"Authorization": auth}, timeout=5)
    assert r.status_code == 401
    # A stale timestamp is refused.
    auth = authorization(keys.writer, keys.signer.name, body, 1_000_000)
    r = requests.post(f"{base}/v1/entries", data=body, headers={"Authorization": auth}, timeout=5)
    assert r.status_code == 401


def test_rule_violation_is_a_422_naming_the_rule(live) -> None:
    base, keys = live
    client = LedgerClient(base, keys.writer)
    with pytest.raises(LedgerRefusedError) as err:
        client.submit([anchor(keys, 1)])
    assert err.value.status == 422 and err.value.rule == Rule.UNKNOWN_KEY


def test_audit_of_an_honest_log_passes_and_a_tampered_one_fails(live) -> None:
    base, keys = live
    client = _fill(base, keys, 520)
    initial = initial_state_for(REGION, keys_root(keys))
    report = audit_log(client, keys.signer.verifier(), initial)
    assert report.size == 521 and report.entries_checked == 521
    assert report.entry_counts["CredentialAnchored"] == 520
    # The same log with one entry swapped (and its tiles left alone) fails the audit.
    files = {"checkpoint": client.checkpoint()}
    for path_args in [(0, 256), (1, 256), (2, 9)]:
        files[
            f"tile/entries/{path_args[0]:03d}"
            + ("" if path_args[1] == 256 else f".p/{path_args[1]}")
        ] = client.entry_bundle(*path_args)
    files["tile/0/000"] = client.tile(0, 0)
    files["tile/0/001"] = client.tile(0, 1)
    files["tile/0/002.p/9"] = client.tile(0, 2, 9)
    files["tile/1/000.p/2"] = client.tile(1, 0, 2)
    assert audit_log(MemoryFetcher(files), keys.signer.verifier(), initial).size == 521
    from ledger.log.tiles import encode_entry_bundle

    b = decode_entry_bundle(files["tile/entries/001"])
    b[3], b[4] = b[4], b[3]
    files["tile/entries/001"] = encode_entry_bundle(b)
    with pytest.raises(AuditError):
        audit_log(MemoryFetcher(files), keys.signer.verifier(), initial)


def keys_root(keys: NodeKeys) -> bytes:
    from ledger.log.entries import root_public_key_bytes

    return root_public_key_bytes(keys.root)


FUZZ_PATHS = [
    "/tile/",
    "/tile/0",
    "/tile/0/",
    "/tile/-1/000",
    "/tile/64/000",
    "/tile/0/1",
    "/tile/0/0001",
    "/tile/0/x000",
    "/tile/0/000.p/0",
    "/tile/0/000.p/256",
    "/tile/0/000.p/",
    "/tile/0/000.p/x",
    "/tile/entries/",
    "/tile/entries/abc",
    "/tile/0/x999/999/999",
    "/tile/00/000",
    "/tile/0/000.p/01",
    "/tile/entries/000.p/300",
    "/tile/%00/000",
    "/tile/0/000/extra",
    "/v1/proof/inclusion",
    "/v1/proof/inclusion?index=-1&size=1",
    "/v1/proof/inclusion?index=0&size=99999999",
    "/v1/proof/inclusion?hash=zz",
    "/v1/proof/inclusion?hash=" + "00" * 32,
    "/v1/proof/inclusion?index=99999999999999999999",
    "/v1/proof/consistency?old=2&new=1",
    "/v1/proof/consistency?old=a&new=b",
    "/v1/proof/consistency",
    "/v1/nothing",
    "/checkpoint/x",
]


def test_malformed_paths_and_queries_get_json_4xx(live) -> None:
    base, keys = live
    _fill(base, keys, 3)
    for path in FUZZ_PATHS:
        r = requests.get(base + path, timeout=5)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert "error" in r.json(), path


def test_malformed_bodies_get_json_4xx_never_500(live) -> None:
    base, keys = live
    rng = random.Random(7)
    bodies = [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"entries": 5}',
        b'{"entries": []}',
        b'{"entries": [5]}',
        b'{"entries": ["!!!"]}',
        b'{"entries": ["AA=="]}',
        json.dumps({"entries": ["A" * 40000]}).encode(),
        b"\xff\xfe\x00",
    ]
    bodies += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) for _ in range(40)]
    t = int(__import__("time").time())
    for body in bodies:
        auth = authorization(keys.writer, keys.signer.name, body, t)
        r = requests.post(
            f"{base}/v1/entries", data=body, headers={"Authorization": auth}, timeout=5
        )
        assert 400 <= r.status_code < 500, (body[:40], r.status_code)
        assert "error" in r.json()
    for header in [
        "HB-Ledger-Writer",
        "HB-Ledger-Writer a.b.c",
        "HB-Ledger-Writer ...",
        "Bearer x",
        "HB-Ledger-Writer " + "A" * 5000 + ".1.x",
    ]:
        r = requests.post(
            f"{base}/v1/entries", data=b"{}", headers={"Authorization": header}, timeout=5
        )
        assert r.status_code == 401, header


def test_client_maps_http_errors_to_typed_errors(live) -> None:
    base, _keys = live
    client = LedgerClient(base)
    with pytest.raises(LedgerResponseError) as err:
        client.inclusion_proof(5, 3)
    assert err.value.status == 400 and err.value.code == "bad_request"


def test_writer_body_nested_too_deep_is_a_400_not_a_500(tmp_path: Path) -> None:
    import time as _time

    from ledger.clients.client import authorization

    keys = make_keys(tmp_path)
    app = create_app(make_config(keys, f"sqlite:///{tmp_path / 'l.db'}", delay_s=0.02))
    try:
        body = b"[" * 50_000
        origin = app.extensions[EXTENSION_KEY].config.origin
        r = app.test_client().post(
            "/v1/entries",
            data=body,
            content_type="application/json",
            headers={"Authorization": authorization(keys.writer, origin, body, int(_time.time()))},
        )
        assert r.status_code == 400 and r.get_json()["error"] == "bad_request"
    finally:
        app.extensions[EXTENSION_KEY].sequencer.stop()


def test_deeply_nested_json_from_a_writer_is_a_400(live) -> None:
    base, keys = live
    body = b'{"entries": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    auth = authorization(keys.writer, keys.signer.name, body, int(__import__("time").time()))
    r = requests.post(f"{base}/v1/entries", data=body, headers={"Authorization": auth}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "bad_request"


def test_an_unexpected_failure_is_a_json_500_without_internals(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    app = create_app(make_config(keys, f"sqlite:///{tmp_path / 'l.db'}", delay_s=0.02))

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    try:
        r = app.test_client().get("/v1/boom")
        assert r.status_code == 500 and r.is_json
        assert r.get_json()["error"] == "internal_error"
        assert "secret" not in r.get_data(as_text=True)
    finally:
        app.extensions[EXTENSION_KEY].sequencer.stop()
        app.extensions[EXTENSION_KEY].store.dispose()


def test_an_entry_rewritten_in_place_stops_the_node_at_start(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from ledger.node.storage import StorageError

    keys = make_keys(tmp_path)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    app = create_app(make_config(keys, url, delay_s=0.02))
    n = app.extensions[EXTENSION_KEY]
    n.sequencer.submit([key_added(keys)] + [anchor(keys, i) for i in range(5)])
    n.sequencer.stop()
    n.store.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as c:  # same length, other bytes: tiles and tree state untouched
        leaf = c.execute(sa.text("SELECT leaf FROM entries WHERE idx = 3")).scalar()
        forged = bytes(leaf[:-1]) + bytes([leaf[-1] ^ 1])
        c.execute(sa.text("UPDATE entries SET leaf = :l WHERE idx = 3"), {"l": forged})
    engine.dispose()
    with pytest.raises(StorageError, match="refusing to serve"):
        create_app(make_config(keys, url, delay_s=0.02))


def test_an_untouched_node_restarts(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    for _ in range(2):
        app = create_app(make_config(keys, url, delay_s=0.02))
        n = app.extensions[EXTENSION_KEY]
        n.sequencer.submit([anchor(keys, 7)] if n.store.tree_state().size else [key_added(keys)])
        n.sequencer.stop()
        n.store.dispose()
