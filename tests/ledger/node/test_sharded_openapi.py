"""ledger/openapi.yaml against a live sharded node (GD with a shard table, MO its
witness, both built as `healthbridge ledger serve --consortium` builds them, over real
HTTP): the node serves exactly the documented routes of a sharded node, and the
top-level routing, every shard's `/{shard}/...` API, a frozen shard's 409
`shard_frozen` and an untracked shard's 404 answer as documented."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from ledger.clients.client import LedgerClient, LedgerResponseError, authorization
from ledger.log.checkpoint import Checkpoint
from ledger.log.entries import (
    CredentialAnchored,
    CredentialRevoked,
    KeyAdded,
    RevocationReason,
    encode_entry,
    sign_key_entry,
)
from ledger.log.note import SignedNote
from ledger.log.revocation import find_extension
from ledger.log.shards import ShardPlan, ShardSchedule, find_frozen
from ledger.serving import RunningNode, open_node
from tests.support.joint_world import Server
from tests.support.ledger_cli import init_node_folder, origin_of, shard_member, write_consortium
from tests.support.ledger_openapi import SHARDED_ONLY, SPEC, check_answer, documented, served_routes

DAY_S = 86_400
WAIT_S = 20.0  # seconds; generous for a loaded machine


@dataclass
class ShardedPair:
    tmp: Path
    nodes: dict[str, RunningNode]
    servers: dict[str, Server]
    epoch: int

    @property
    def gd(self) -> str:
        return self.servers["GD"].url


@pytest.fixture()
def sharded_pair(tmp_path: Path) -> Iterator[ShardedPair]:
    """GD sharded by day: shard 0 ended ten minutes ago (frozen, not yet droppable),
    shard 1 is open, shards 2 and 3 lie ahead (credentials valid up to two days)."""
    epoch = int(time.time()) - DAY_S - 600
    plan = ShardPlan(ShardSchedule(origin_of("GD"), DAY_S, epoch), 3600, 2 * DAY_S)
    servers = {region: Server() for region in ("GD", "MO")}
    nodes: dict[str, RunningNode] = {}
    try:
        for region in servers:
            init_node_folder(tmp_path / region, region)
        consortium = write_consortium(tmp_path, {k: s.port for k, s in servers.items()})
        shard_member(consortium, "GD", plan)
        for region, server in servers.items():
            nodes[region] = open_node(tmp_path / region / "node.toml", consortium)
            server.app = nodes[region].app
        for server in servers.values():
            server.start()
        yield ShardedPair(tmp_path, nodes, servers, epoch)
    finally:
        for server in servers.values():
            server.close()
        for running in nodes.values():
            running.close()


def _shard_checkpoint(base: str, size: int) -> bytes:
    """The shard's signed checkpoint once it covers `size` entries."""
    deadline = time.monotonic() + WAIT_S
    note = b""
    while time.monotonic() < deadline:
        note = requests.get(f"{base}/checkpoint", timeout=5).content
        if f"\n{size}\n".encode() in note:
            return note
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of size {size} at {base}: {note!r}")


def _revocation_digest(note: bytes) -> str:
    digest = find_extension(Checkpoint.parse(SignedNote.parse(note).text).extensions)
    assert digest is not None, "checkpoint commits no revocation snapshot"
    return digest.hex()


def signed_post(client: LedgerClient, entries: list[bytes]) -> requests.Response:
    """A writer-authenticated POST whose answer is checked as is (the client would raise)."""
    body = json.dumps({"entries": [base64.b64encode(e).decode() for e in entries]}).encode()
    assert client.key is not None
    auth = authorization(client.key, client.origin, body, int(time.time()))
    return requests.post(
        f"{client.base_url}/v1/entries",
        data=body,
        headers={"Authorization": auth, "Content-Type": "application/json"},
        timeout=10,
    )


def test_sharded_node_serves_exactly_the_documented_routes_as_documented(
    sharded_pair: ShardedPair,
) -> None:
    pair = sharded_pair
    gd_app = pair.nodes["GD"].app
    assert served_routes(gd_app) == documented(sharded=True)
    assert served_routes(pair.nodes["MO"].app) == documented(sharded=False)

    # A key through the routing endpoint (to every open or future shard), two
    # credentials straight into shard 1, then a revocation routed to shard 1.
    gd_dir = pair.tmp / "GD"
    root = load_pem_private_key((gd_dir / "root.pem").read_bytes(), None)
    issuer = generate_private_key(SigningAlg.ES256)
    der = public_key_der(issuer)
    kid = key_id(der)
    added = encode_entry(sign_key_entry(KeyAdded("GD", kid, SigningAlg.ES256, der, 0, None), root))
    writer = gd_dir / "writer.pem"
    routed = LedgerClient(pair.gd, writer, timeout=10)
    shard1 = LedgerClient(f"{pair.gd}/1", writer, timeout=10)
    in_shard_1 = pair.epoch + DAY_S + 3600  # an expiry inside shard 1's period
    in_shard_0 = pair.epoch + 3600
    in_shard_2 = pair.epoch + 2 * DAY_S + 3600
    routed.submit([added])
    shard1.submit(
        [encode_entry(CredentialAnchored("GD", bytes([i]) * 32, i, kid, in_shard_1))
         for i in (1, 2)]
    )  # fmt: skip
    first = _revocation_digest(_shard_checkpoint(f"{pair.gd}/1", 3))
    revoked = encode_entry(CredentialRevoked("GD", 1, RevocationReason.FRAUD, 1))

    frozen0 = LedgerClient(f"{pair.gd}/0", writer, timeout=10)
    anchor = CredentialAnchored  # short name for the table below
    posts: list[tuple[str, LedgerClient, list[bytes], int]] = [
        # Routed by content: the revocation to the shard that anchored index 1.
        ("/v1/entries", routed, [revoked], 200),
        # An anchor expiring in the frozen shard 0, routed or sent straight there.
        ("/v1/entries", routed, [encode_entry(anchor("GD", b"\x09" * 32, 9, kid, in_shard_0))],
         409),
        ("/{shard}/v1/entries", frozen0,
         [encode_entry(anchor("GD", b"\x09" * 32, 9, kid, in_shard_0))], 409),
        # Straight into shard 1, an anchor of shard 2's period.
        ("/{shard}/v1/entries", shard1,
         [encode_entry(anchor("GD", b"\x0a" * 32, 10, kid, in_shard_2))], 422),
        ("/{shard}/v1/entries", shard1,
         [encode_entry(anchor("GD", b"\x0b" * 32, 11, kid, in_shard_1))], 200),
    ]  # fmt: skip
    answers: dict[str, requests.Response] = {}
    for path, client, entries, expected in posts:
        r = signed_post(client, entries)
        check_answer(path, "post", r, expected)
        answers.setdefault(f"{path} {expected}", r)
    routed_receipt = answers["/v1/entries 200"].json()
    assert routed_receipt["size"] is None
    assert routed_receipt["receipts"][0]["shard"] == 1
    assert routed_receipt["receipts"][0]["origin"] == f"{origin_of('GD')}/1"
    for key in ("/v1/entries 409", "/{shard}/v1/entries 409"):
        assert answers[key].json()["error"] == "shard_frozen", key
    assert answers["/{shard}/v1/entries 422"].json()["rule"] == "wrong_shard"
    with pytest.raises(LedgerResponseError):
        frozen0.submit([added])  # the client raises on the same refusal

    second = _revocation_digest(_shard_checkpoint(f"{pair.gd}/1", 5))
    assert first != second
    frozen_note = requests.get(f"{pair.gd}/0/checkpoint", timeout=5).content
    assert find_frozen(Checkpoint.parse(SignedNote.parse(frozen_note).text).extensions)

    zero = "00" * 32
    snap = "/{shard}/revocation/snapshot/{digest}"
    delta = "/{shard}/revocation/delta/{from_digest}/{to_digest}"
    incl, cons = "/{shard}/v1/proof/inclusion", "/{shard}/v1/proof/consistency"
    entry_hash = answers["/{shard}/v1/entries 200"].json()["receipts"][0]["entry_hash"]
    gets: list[tuple[str, str, int]] = [
        ("/v1/shards", "/v1/shards", 200),
        ("/v1/status", "/v1/status", 200),
        ("/checkpoint", "/checkpoint", 404),  # a sharded log has no checkpoint of its own
        ("/healthz", "/healthz", 200),
        ("/readyz", "/readyz", 200),
        ("/{shard}/checkpoint", "/1/checkpoint", 200),
        ("/{shard}/checkpoint", "/0/checkpoint", 200),
        ("/{shard}/checkpoint", "/9/checkpoint", 404),  # not tracked
        ("/{shard}/checkpoint", "/01/checkpoint", 404),  # not a shard number
        ("/{shard}/tile/{subpath}", "/1/tile/0/000.p/5", 200),
        ("/{shard}/tile/{subpath}", "/1/tile/entries/000.p/5", 200),
        ("/{shard}/tile/{subpath}", "/1/tile/zz/000", 400),
        ("/{shard}/tile/{subpath}", "/1/tile/0/000", 404),
        ("/{shard}/tile/{subpath}", "/9/tile/0/000.p/1", 404),
        (incl, "/1/v1/proof/inclusion?index=1&size=5", 200),
        (incl, f"/1/v1/proof/inclusion?hash={entry_hash}", 200),
        (incl, f"/1/v1/proof/inclusion?hash={zero}", 404),
        (incl, "/1/v1/proof/inclusion?index=9&size=5", 400),
        (cons, "/1/v1/proof/consistency?old=2&new=5", 200),
        (cons, "/1/v1/proof/consistency?old=x&new=5", 400),
        (cons, "/7/v1/proof/consistency?old=1&new=2", 404),
        ("/{shard}/v1/status", "/1/v1/status", 200),
        ("/{shard}/v1/status", "/0/v1/status", 200),
        ("/{shard}/v1/status", "/123456789012/v1/status", 404),
        (snap, f"/1/revocation/snapshot/{second}", 200),
        (snap, "/1/revocation/snapshot/not-hex", 400),
        (snap, f"/1/revocation/snapshot/{zero}", 404),
        (delta, f"/1/revocation/delta/{first}/{second}", 200),
        (delta, f"/1/revocation/delta/{first}/{second[:-1]}", 400),
        (delta, f"/1/revocation/delta/{second}/{first}", 404),
        ("/{shard}/healthz", "/2/healthz", 200),
        ("/{shard}/healthz", "/8/healthz", 404),
        ("/{shard}/readyz", "/2/readyz", 200),
        ("/{shard}/readyz", "/8/readyz", 404),
        # The unsharded read routes are not served at the top of a sharded node.
        ("/tile/{subpath}", "/tile/0/000.p/1", 404),
        ("/v1/proof/inclusion", "/v1/proof/inclusion?index=0&size=1", 404),
        ("/v1/proof/consistency", "/v1/proof/consistency?old=0&new=1", 404),
        ("/revocation/snapshot/{digest}", f"/revocation/snapshot/{second}", 404),
        ("/revocation/delta/{from_digest}/{to_digest}",
         f"/revocation/delta/{first}/{second}", 404),
    ]  # fmt: skip
    for path, url, expected in gets:
        r = requests.get(pair.gd + url, timeout=10)
        check_answer(path, "get", r, expected)
        answers.setdefault(f"GET {url}", r)

    shards = answers["GET /v1/shards"].json()["shards"]
    assert [(s["number"], s["state"], s["frozen"]) for s in shards][:2] == [
        (0, "frozen", True),
        (1, "open", False),
    ]
    assert {s["number"]: s["size"] for s in shards}[1] == 5
    assert answers["GET /1/v1/status"].json()["origin"] == f"{origin_of('GD')}/1"

    exercised = {(path, "post") for path, *_ in posts} | {(path, "get") for path, *_ in gets}
    sharded_only = {
        (path, method)
        for path, ops in SPEC["paths"].items()
        for method, op in ops.items()
        if SHARDED_ONLY in op.get("tags", [])
    }
    assert sharded_only <= exercised
