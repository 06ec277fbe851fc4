"""Attacks on temporal shards from outside, over real HTTP on 127.0.0.1.

The world is the one of test_shard_rollover (GD sharded with 1-hour shards whose
shard 0 ends 100 s after the start, MO unsharded and witnessing GD; the GD node's and
issuer's clock is moved instead of sleeping). Each test is one attack:

- GD's own node lies about which shards are live (its clock pushed past shard 0's
  grace): stations and MO's mirror judge droppability from the consortium file and
  their own clock, keep shard 0's revocations, and say so when no source serves it;
- GD's node signs frozen lines the schedule does not imply, or takes a freeze back:
  MO's witness refuses them, typed;
- a quiet night (no entry at all) and a busy day's boundary second (expiry == shard
  end): every shard stays cosigned, the credential lands in exactly one shard;
- malformed requests on every shard route of the node and on the witness's and
  mirror's endpoints: a typed 4xx, never a 500.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from credential.issue import read_claims_unverified
from credential.presentation import make_presentation
from credential.verify import RevokedError, check_presentation
from issuer import anchor
from issuer.admin.services import AdminService
from issuer.testing import enrol_directly, new_device
from ledger.clients.client import LedgerResponseError
from ledger.clients.sync import RegionStatus, SyncClient, SyncedTrustState, mirror_prefix
from ledger.joint.witness import AddCheckpointRequest
from ledger.log.checkpoint import Checkpoint, open_checkpoint, signed_checkpoint
from ledger.log.entries import (
    CredentialAnchored,
    CredentialRevoked,
    RevocationReason,
    encode_entry,
)
from ledger.log.errors import LedgerError
from ledger.log.note import NoteSigner
from ledger.log.shards import FROZEN_EXTENSION_PREFIX, find_frozen
from tests.ledger.joint.test_shard_rollover import (  # the same world, one fixture
    ADMIN,
    END0_S,
    GRACE_S,
    PERIOD_S,
    ROLLED_S,
    VALIDITY_S,
    World,
    world,
)
from tests.support.joint_world import wait_for

__all__ = ["world"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.slow


def _station(w: World, name: str, compact: bool = False) -> tuple[SyncClient, SyncedTrustState]:
    """A station with its own (real) clock: not the clock the GD node is given."""
    client = SyncClient(w.consortium, w.tmp / f"{name}.db", clock=time.time, compact=compact)
    w.stations.append(client)
    return client, SyncedTrustState(w.tmp / f"{name}.db")


def _mirror_serves(w: World, k: int, size: int) -> bool:
    """MO's mirror serves shard k at `size` with both witnesses' cosignatures."""
    r = requests.get(f"{mirror_prefix(w.mo_url, f'{w.gd.origin}/{k}')}/checkpoint", timeout=5)
    if r.status_code != 200:
        return False
    body = r.content.decode()
    return f"\n{size}\n" in body and body.split("\n\n", 1)[1].count("\u2014 ") >= 3


def _note(w: World, k: int | None, size: int, root: bytes, extensions: tuple[str, ...]) -> bytes:
    """A checkpoint signed by GD's log key under shard k's origin (or MO's own log key
    and origin when k is None): what GD's node (or MO's) could sign at will."""
    if k is None:
        signer = NoteSigner(w.mo.origin, w.mo.log_signer.private_key)
    else:
        signer = NoteSigner(f"{w.gd.origin}/{k}", w.gd.log_signer.private_key)
    return signed_checkpoint(Checkpoint(signer.name, size, root, extensions), signer)


def _add(url: str, size: int, note: bytes) -> requests.Response:
    return requests.post(
        f"{url}/add-checkpoint", data=AddCheckpointRequest(size, (), note).render(), timeout=10
    )


# -- 1. the node's own listing is not trusted ------------------------------------------


def test_node_dropping_a_live_shard_early_does_not_make_stations_forget_its_revocations(
    world: World,
) -> None:
    w = world
    anchor.drain(w.issuer, w.port)
    keys = w.shard_checkpoint(0).size
    device = new_device()
    issued = enrol_directly(w.issuer, "G10000001", device).issued.credential
    exp = read_claims_unverified(issued.jws).expires_at
    assert exp < w.t0 + END0_S  # anchored in shard 0
    AdminService(w.issuer).revoke(ADMIN, issued.status_index, "fraud", "test")
    assert anchor.drain(w.issuer, w.port) == 2  # the anchor and its revocation
    wait_for(lambda: w.cosigned(0, keys + 2), "shard 0 cosigned with the revocation")
    wait_for(lambda: _mirror_serves(w, 0, keys + 2), "MO's mirror serving shard 0")
    stations = [_station(w, "full"), _station(w, "compact", compact=True)]
    for client, trust in stations:
        assert client.sync("GD").region("GD").status is RegionStatus.UPDATED
        assert trust.is_revoked("GD", issued.status_index)

    # GD's operator moves its node's clock past shard 0's grace: the node closes shard
    # 0, leaves it out of /v1/shards and stops serving it. Nothing else changed.
    w.clock.offset = END0_S + GRACE_S + 10
    listed = requests.get(f"{w.gd_url}/v1/shards", timeout=5).json()["shards"]
    assert 0 not in [s["number"] for s in listed]
    assert requests.get(f"{w.gd_url}/0/checkpoint", timeout=5).status_code == 404

    # The stations' own clock says shard 0 is live: they keep it, sync it from MO's
    # mirror, and still deny the revoked credential.
    for client, trust in stations:
        report = client.sync("GD").region("GD")
        assert report.dropped == ()
        shard0 = next(s for s in report.shards if s.region == "GD/0")
        assert shard0.status is not RegionStatus.FAILED and "/mirror/" in (shard0.source or "")
        assert trust.is_revoked("GD", issued.status_index)
        qr = make_presentation(issued.jws, device, exp - 20)
        with pytest.raises(RevokedError):
            check_presentation(qr, trust, exp - 20)
    # MO's mirror decides from the same file and its own clock: nothing to drop.
    assert w.mo_joint.mirror.drop_droppable(int(time.time())) == []

    # With no source left for shard 0 the region is reported failed, naming the shard,
    # and its state (the revocation) is kept: stale, never silently gone.
    w.servers[1].stop()
    try:
        reports = [client.sync("GD").region("GD") for client, _ in stations]
    finally:
        w.servers[1].start()
    for report, (_, trust) in zip(reports, stations, strict=True):
        assert report.status is RegionStatus.FAILED and report.dropped == ()
        assert any(e.startswith("GD/0: ") for e in report.errors), report.errors
        assert trust.is_revoked("GD", issued.status_index)
        assert trust.tree_size("GD/0") == keys + 2


# -- 2. frozen lines the schedule does not imply -----------------------------------------


def test_witness_refuses_frozen_lines_the_schedule_does_not_imply(world: World) -> None:
    w = world
    anchor.drain(w.issuer, w.port)
    keys = w.shard_checkpoint(0).size
    wait_for(lambda: w.cosigned(0, keys) and w.cosigned(1, keys), "both shards cosigned")
    end0 = w.t0 + END0_S
    cp0, cp1 = w.shard_checkpoint(0), w.shard_checkpoint(1)
    bad = [
        (0, cp0, f"{FROZEN_EXTENSION_PREFIX}1 {end0}"),  # another shard's number
        (0, cp0, f"{FROZEN_EXTENSION_PREFIX}0 {end0 + 1}"),  # another end
        (0, cp0, f"{FROZEN_EXTENSION_PREFIX}00 {end0}"),  # malformed number
        (0, cp0, f"{FROZEN_EXTENSION_PREFIX}-1 {end0}"),
        (0, cp0, f"{FROZEN_EXTENSION_PREFIX}0 {end0} extra"),
        # Shard 1's period is an hour away at MO's clock: frozen early.
        (1, cp1, f"{FROZEN_EXTENSION_PREFIX}1 {end0 + PERIOD_S}"),
    ]
    for k, cp, line in bad:
        note = _note(w, k, cp.size, cp.root_hash, (*cp.extensions, line))
        r = _add(w.mo_url, cp.size, note)
        assert r.status_code == 422 and r.json()["error"] == "bad_frozen_line", (line, r.text)
    # Two frozen lines in one note are malformed too.
    twice = (*cp0.extensions, f"{FROZEN_EXTENSION_PREFIX}0 {end0}", f"{FROZEN_EXTENSION_PREFIX}0 1")
    r = _add(w.mo_url, cp0.size, _note(w, 0, cp0.size, cp0.root_hash, twice))
    assert r.status_code == 422 and r.json()["error"] == "bad_frozen_line", r.text
    # An unsharded log (MO's, witnessed by GD) can never be frozen.
    mo_cp = open_checkpoint(
        requests.get(f"{w.mo_url}/checkpoint", timeout=5).content,
        NoteSigner(w.mo.origin, w.mo.log_signer.private_key).verifier(),
    ).checkpoint
    note = _note(w, None, mo_cp.size, mo_cp.root_hash,
                 (*mo_cp.extensions, f"{FROZEN_EXTENSION_PREFIX}0 {end0}"))  # fmt: skip
    r = _add(w.gd_url, mo_cp.size, note)
    assert r.status_code == 422 and r.json()["error"] == "bad_frozen_line", r.text
    # None of it moved MO's witness: shard 0 and 1 are still open at their size.
    status = requests.get(f"{w.mo_url}/v1/witness/status", timeout=5).json()
    witnessed = {x["origin"]: x["size"] for x in status["logs"]}
    assert witnessed[f"{w.gd.origin}/0"] == keys and witnessed[f"{w.gd.origin}/1"] == keys
    # Each note is signed by the log's key: the log itself declared a freeze its
    # schedule does not imply. Both witnesses keep every such note once, as evidence
    # the other region can show; the same note sent again is the same incident.
    r = _add(w.mo_url, cp0.size, _note(w, 0, cp0.size, cp0.root_hash, twice))
    assert r.status_code == 422
    alarms = requests.get(f"{w.mo_url}/v1/alarms", timeout=5).json()["alarms"]
    assert [a["kind"] for a in alarms] == ["bad_frozen_line"] * (len(bad) + 1)
    assert {a["origin"] for a in alarms} == {f"{w.gd.origin}/0", f"{w.gd.origin}/1"}
    at_gd = requests.get(f"{w.gd_url}/v1/alarms", timeout=5).json()["alarms"]
    assert [(a["kind"], a["origin"]) for a in at_gd] == [("bad_frozen_line", w.mo.origin)]


def test_witness_refuses_a_frozen_shard_taken_back(world: World) -> None:
    w = world
    anchor.drain(w.issuer, w.port)
    keys = w.shard_checkpoint(0).size
    wait_for(lambda: w.cosigned(0, keys), "shard 0 cosigned")
    w.clock.offset = ROLLED_S
    requests.get(f"{w.gd_url}/v1/shards", timeout=5)  # any request runs the lifecycle
    wait_for(lambda: w.cosigned(0, keys, frozen=True), "shard 0's final checkpoint cosigned")
    frozen = w.shard_checkpoint(0)
    assert find_frozen(frozen.extensions) == (0, w.t0 + END0_S)
    # The same tree without the frozen line: GD "unfreezing" shard 0.
    thawed = tuple(e for e in frozen.extensions if not e.startswith(FROZEN_EXTENSION_PREFIX))
    r = _add(w.mo_url, keys, _note(w, 0, keys, frozen.root_hash, thawed))
    assert r.status_code == 409 and r.json()["error"] == "shard_frozen", r.text
    assert r.json()["latest_size"] == keys
    # The frozen note itself is still re-cosigned (freshness of a frozen shard).
    r = _add(w.mo_url, keys, _note(w, 0, keys, frozen.root_hash, frozen.extensions))
    assert r.status_code == 200, r.text


def test_witness_knows_no_shard_far_in_the_future_or_malformed(world: World) -> None:
    w = world
    empty = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    for suffix in ("1000000000000", "999999999999", "-1", "01", "1e3", "0x1", " 1", "1/2"):
        signer = NoteSigner(f"{w.gd.origin}/{suffix}", w.gd.log_signer.private_key)
        try:
            note = signed_checkpoint(Checkpoint(signer.name, 0, empty), signer)
        except LedgerError:  # an origin the note format itself refuses
            continue
        r = _add(w.mo_url, 0, note)
        assert r.status_code in (400, 403, 404), (suffix, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/json"), suffix


# -- 4. a quiet night and a busy day's boundary second ----------------------------------


def test_quiet_night_rollover_keeps_every_shard_cosigned_and_fresh(world: World) -> None:
    """No entry at all, not even the issuer's keys: the empty shards are cosigned, the
    period passes, shard 0 freezes empty, shard 2 opens, and a station is fresh."""
    w = world
    wait_for(lambda: w.cosigned(0, 0) and w.cosigned(1, 0), "the empty shards cosigned")
    w.clock.offset = ROLLED_S
    requests.get(f"{w.gd_url}/v1/shards", timeout=5)
    wait_for(lambda: w.cosigned(0, 0, frozen=True), "empty shard 0 frozen and cosigned")
    wait_for(lambda: w.cosigned(2, 0), "the new shard 2 cosigned though empty")
    listed = {
        s["number"]: s for s in requests.get(f"{w.gd_url}/v1/shards", timeout=5).json()["shards"]
    }
    assert listed[0]["state"] == "frozen" and listed[2]["size"] == 0
    for compact in (False, True):  # the node's (moved) clock
        client, _trust = w.station(f"night-{compact}", compact=compact)
        report = client.sync("GD").region("GD")
        assert report.status is not RegionStatus.FAILED, report.errors
        assert [s.region for s in report.shards] == ["GD/0", "GD/1", "GD/2"]
        assert report.synced_at is not None and report.synced_at >= w.t0
    # Freshness goes on without entries: MO re-cosigns the frozen and the open shards.
    first = w.cosigned_at(2)
    wait_for(lambda: w.cosigned_at(2) > first, "the empty open shard re-cosigned")


def test_credential_expiring_at_the_shard_boundary_second_lands_in_the_next_shard_only(
    world: World,
) -> None:
    w = world
    anchor.drain(w.issuer, w.port)
    keys = w.shard_checkpoint(0).size
    end0 = w.t0 + END0_S
    device = new_device()
    # The issuer's clock half a second into end0 - VALIDITY_S: its credential expires
    # exactly at shard 0's end, the first second of shard 1 (periods are half-open).
    w.clock.offset = end0 - VALIDITY_S - time.time() + 0.5
    issued = enrol_directly(w.issuer, "G10000001", device).issued.credential
    w.clock.offset = 0
    exp = read_claims_unverified(issued.jws).expires_at
    assert exp == end0
    assert anchor.drain(w.issuer, w.port) == 1
    wait_for(lambda: w.cosigned(1, keys + 1), "shard 1 cosigned with the anchor")
    assert w.shard_checkpoint(0).size == keys  # and not in shard 0
    client, trust = w.station("boundary", compact=False)
    report = client.sync("GD").region("GD")
    assert report.status is RegionStatus.UPDATED, report.errors
    qr = make_presentation(issued.jws, device, exp - 20)
    vp = check_presentation(qr, trust, exp - 20)
    assert trust.anchored_at("GD", vp.digest) is not None
    assert trust.tree_size("GD/0") == keys and trust.tree_size("GD/1") == keys + 1


# -- 5. malformed input on every shard route --------------------------------------------

_PATHS = [
    "/-1/checkpoint", "/00001/checkpoint", "/01/checkpoint", "/1e3/checkpoint",
    "/1000000000000/checkpoint", "/999999999999/checkpoint", "/999999999999/v1/status",
    "/0/tile/0/x", "/0/tile/0/000", "/0/tile/0/000.p/0", "/0/tile/0/000.p/999",
    "/0/tile/entries/-1", "/0/tile/entries/x%ZZ", "/0/tile/99/000", "/0/tile/0/x999/000",
    "/0/v1/proof/inclusion/-1/0", "/0/v1/proof/inclusion/x/y", "/0/v1/proof/consistency/9/1",
    "/0/v1/proof/consistency/1/99999999999999999999999", "/0/revocation/snapshot/zz",
    "/0/revocation/snapshot/" + "0" * 64, "/0/revocation/delta/x/y", "/0/%ZZ", "/%ZZ/checkpoint",
    "/0/../1/checkpoint", "/0//checkpoint", "/v1/shards/%00", "/v1/shards?x=%ZZ",
    "/mirror/zz/checkpoint", "/mirror/" + "0" * 64 + "/checkpoint",
    "/mirror/" + "0" * 64 + "/tile/0/000", "/mirror/%ZZ/tile/0/000",
]  # fmt: skip


def _bodies() -> list[tuple[bytes, str]]:
    return [
        (b"", "application/octet-stream"),
        (b"\x00\xff" * 100, "application/octet-stream"),
        (b'{"entries": ["%ZZ"]}', "application/json"),
        (b"[1, 2, 3]", "application/json"),
        ("\u2014 \ud7ff".encode(), "text/plain; charset=utf-8"),
        (b"old 0\n\n", "text/plain"),
        (b"old -1\n\nx\n", "text/plain"),
        (b"x" * (2 << 20), "application/octet-stream"),  # 2 MiB: over every body limit
    ]


def _typed(r: requests.Response) -> Any:
    assert r.status_code < 500, (r.request.method, r.request.url, r.status_code, r.text[:200])
    return r


def test_malformed_requests_on_shard_routes_get_typed_4xx(world: World) -> None:
    w = world
    for base in (w.gd_url, w.mo_url):
        for path in _PATHS:
            r = _typed(requests.get(base + path, timeout=10))
            if r.status_code >= 400 and r.content:
                assert r.headers["Content-Type"].startswith(("application/json", "text/")), path
    # Shard numbers that are not canonical, or name no shard the node runs: 404.
    for path in (
        "/-1/checkpoint",
        "/00001/checkpoint",
        "/01/checkpoint",
        "/1e3/checkpoint",
        "/1000000000000/checkpoint",
        "/999999999999/checkpoint",
        "/7/checkpoint",
    ):
        r = requests.get(w.gd_url + path, timeout=10)
        assert r.status_code == 404 and r.headers["Content-Type"] == "application/json", path
    posts = ["/v1/entries", "/0/v1/entries", "/1/v1/entries", "/-1/v1/entries",
             "/00/v1/entries", "/1000000000000/v1/entries", "/add-checkpoint",
             "/v1/shards", "/0/add-checkpoint"]  # fmt: skip
    for base in (w.gd_url, w.mo_url):
        for path in posts:
            for body, ctype in _bodies():
                r = _typed(
                    requests.post(base + path, data=body, headers={"Content-Type": ctype},
                                  timeout=10)
                )  # fmt: skip
                assert r.status_code >= 400, (path, r.status_code)
    # Both nodes still serve and still cosign after all of it.
    assert requests.get(f"{w.gd_url}/0/checkpoint", timeout=5).status_code == 200
    assert requests.get(f"{w.mo_url}/checkpoint", timeout=5).status_code == 200


def test_authenticated_garbage_entries_on_shard_routes_get_typed_4xx(world: World) -> None:
    """Past writer authentication: bytes that are no entry, an anchor expiring at the
    end of time or before the epoch, a revocation of an index no shard anchored."""
    w = world
    anchor.drain(w.issuer, w.port)
    kid = "k" * 8
    far = CredentialAnchored("GD", b"\x01" * 32, 1, kid, 2**63 - 1)
    early = CredentialAnchored("GD", b"\x02" * 32, 2, kid, 0)
    ghost = CredentialRevoked("GD", 987_654, RevocationReason.UNSPECIFIED, 0)
    # The far anchor's expiry field set to 2^64 - 1, which no decoder accepts.
    beyond = encode_entry(far)[:-8] + b"\xff" * 8
    garbage = [b"", b"\x00", b"\xff" * 64, b"\x01\x03\xff", encode_entry(far)[:-3], beyond]
    batches = [[g] for g in garbage] + [[encode_entry(e)] for e in (far, early, ghost)]
    for batch in batches:
        with pytest.raises(LedgerResponseError) as e:
            w.port.client.submit(batch)
        assert 400 <= e.value.status < 500, (batch, e.value.status, e.value)
        for k in (0, 1):
            try:
                w.port.submit_to_shard(k, batch)
            except anchor.EntryRefusedError:
                pass  # 422 naming the rule
            except LedgerResponseError as err:
                assert 400 <= err.status < 500, (k, batch, err.status, err)
            else:
                raise AssertionError(f"shard {k} took {batch!r}")
    assert w.shard_checkpoint(0).size == w.shard_checkpoint(1).size  # nothing logged
