"""ledger/openapi.yaml against the running node: the routes the node serves are exactly
the documented paths (stand-alone and in joint operation, built as `healthbridge ledger
serve --consortium` builds it), and responses to valid and malformed requests match the
documented status codes, media types, schemas and cache headers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from ledger.clients.client import LedgerClient
from ledger.joint.witness import AddCheckpointRequest
from ledger.log.checkpoint import Checkpoint, signed_checkpoint
from ledger.log.entries import (
    CredentialAnchored,
    CredentialRevoked,
    KeyAdded,
    RevocationReason,
    encode_entry,
    sign_key_entry,
)
from ledger.log.note import NoteSigner, SignedNote
from ledger.log.revocation import find_extension
from ledger.node.app import EXTENSION_KEY, create_app
from ledger.serving import RunningNode, open_node
from ledger.testing import anchor, key_added, make_config, make_keys
from tests.support.joint_world import Server
from tests.support.ledger_cli import init_node_folder, origin_of, write_consortium
from tests.support.ledger_openapi import (
    SPEC,
    check_answer,
    documented,
    json_schema,
    served_routes,
)

WAIT_S = 20.0  # seconds; generous for a loaded machine


@pytest.fixture()
def app(tmp_path: Path):
    keys = make_keys(tmp_path)
    a = create_app(make_config(keys, f"sqlite:///{tmp_path / 'l.db'}", delay_s=0.02))
    yield a, keys
    a.extensions[EXTENSION_KEY].sequencer.stop()


CASES = [
    ("/v1/status", "get", "/v1/status", 200),
    ("/checkpoint", "get", "/checkpoint", 200),
    ("/tile/{subpath}", "get", "/tile/0/000.p/3", 200),
    ("/tile/{subpath}", "get", "/tile/0/000", 404),
    ("/tile/{subpath}", "get", "/tile/zz/000", 400),
    ("/tile/{subpath}", "get", "/tile/entries/000.p/3", 200),
    ("/v1/proof/inclusion", "get", "/v1/proof/inclusion?index=1&size=3", 200),
    ("/v1/proof/inclusion", "get", "/v1/proof/inclusion?index=9&size=3", 400),
    ("/v1/proof/inclusion", "get", "/v1/proof/inclusion?hash=" + "ab" * 32, 404),
    ("/v1/proof/consistency", "get", "/v1/proof/consistency?old=1&new=3", 200),
    ("/v1/proof/consistency", "get", "/v1/proof/consistency?old=x&new=3", 400),
    ("/v1/entries", "post", "/v1/entries", 401),
    ("/healthz", "get", "/healthz", 200),
    ("/readyz", "get", "/readyz", 200),
]


def test_documented_routes_answer_as_documented(app) -> None:
    from ledger.testing import serve

    a, keys = app
    seq = a.extensions[EXTENSION_KEY].sequencer
    seq.submit([key_added(keys), anchor(keys, 1), anchor(keys, 2)])
    unsharded = documented(sharded=False)
    # Without a consortium the node serves a subset: no witness, alarms or mirror.
    assert served_routes(a) <= unsharded
    assert {(p, m) for p, m, *_ in CASES} <= served_routes(a)
    deadline = time.monotonic() + WAIT_S
    with serve(a) as base:
        while requests.get(f"{base}/v1/status", timeout=5).json()["checkpoint_size"] != 3:
            assert time.monotonic() < deadline, "no checkpoint of size 3"
            time.sleep(0.02)
        for path, method, url, expected in CASES:
            r = requests.request(method, base + url, data=b"{}", timeout=10)
            check_answer(path, method, r, expected)


def test_every_spec_path_is_served_by_a_real_client(app, tmp_path: Path) -> None:
    from ledger.testing import serve

    a, keys = app
    with serve(a) as base:
        c = LedgerClient(base, keys.writer)
        receipts = c.submit([key_added(keys)])
        status = c.status()
        jsonschema.validate(status, json_schema(SPEC["components"]["schemas"]["LogStatus"]))
        assert receipts[0].index == 0


# -- joint operation: the node as `healthbridge ledger serve --consortium` builds it ----


@dataclass
class JointPair:
    tmp: Path
    nodes: dict[str, RunningNode]
    servers: dict[str, Server]

    def url(self, region: str) -> str:
        return self.servers[region].url

    def checkpoint(self, region: str) -> bytes:
        return requests.get(f"{self.url(region)}/checkpoint", timeout=5).content


@pytest.fixture()
def joint_pair(tmp_path: Path) -> Iterator[JointPair]:
    """GD and MO set up with `ledger init` / `ledger consortium init`, each built by
    ledger.serving.open_node (what `ledger serve --consortium` runs) and served over
    real HTTP on ports bound before the consortium file names them."""
    servers = {region: Server() for region in ("GD", "MO")}
    nodes: dict[str, RunningNode] = {}
    try:
        for region in servers:
            init_node_folder(tmp_path / region, region)
        consortium = write_consortium(tmp_path, {k: s.port for k, s in servers.items()})
        for region, server in servers.items():
            nodes[region] = open_node(tmp_path / region / "node.toml", consortium)
            server.app = nodes[region].app
        for server in servers.values():
            server.start()
        yield JointPair(tmp_path, nodes, servers)
    finally:
        for server in servers.values():
            server.close()
        for running in nodes.values():
            running.close()


def _cosigned(pair: JointPair, size: int) -> bytes:
    """GD's checkpoint of `size` once MO's witness (over HTTP) has cosigned it."""
    deadline = time.monotonic() + WAIT_S
    note = b""
    while time.monotonic() < deadline:
        note = pair.checkpoint("GD")
        if f"\n{size}\n".encode() in note and "\u2014 mo.hb.test/witness ".encode() in note:
            return note
        time.sleep(0.05)
    raise AssertionError(f"GD size {size} not cosigned by MO: {note!r}")


def _revocation_digest(note: bytes) -> str:
    cp = Checkpoint.parse(SignedNote.parse(note).text)
    digest = find_extension(cp.extensions)
    assert digest is not None, "checkpoint commits no revocation snapshot"
    return digest.hex()


def _witness_request(old: int, note: bytes) -> bytes:
    """An add-checkpoint body without a proof (old size 0 or the checkpoint's own size)."""
    return AddCheckpointRequest(old, (), note).render()


def test_joint_node_serves_exactly_the_documented_routes_as_documented(
    joint_pair: JointPair,
) -> None:
    pair = joint_pair
    unsharded = documented(sharded=False)
    for region in ("GD", "MO"):
        assert served_routes(pair.nodes[region].app) == unsharded, region

    # GD takes a key, two credentials, then a revocation; MO cosigns each checkpoint
    # after its validating mirror re-derived the entries and the revocation snapshot.
    gd_dir = pair.tmp / "GD"
    root = load_pem_private_key((gd_dir / "root.pem").read_bytes(), None)
    issuer = generate_private_key(SigningAlg.ES256)
    der = public_key_der(issuer)
    kid = key_id(der)
    added = sign_key_entry(KeyAdded("GD", kid, SigningAlg.ES256, der, 0, None), root)
    writer = LedgerClient(pair.url("GD"), gd_dir / "writer.pem", timeout=10)
    writer.submit(
        [encode_entry(added)]
        + [encode_entry(CredentialAnchored("GD", bytes([i]) * 32, i, kid, 4_000_000_000))
           for i in (1, 2)]
    )  # fmt: skip
    first = _revocation_digest(_cosigned(pair, 3))
    writer.submit([encode_entry(CredentialRevoked("GD", 1, RevocationReason.FRAUD, 1))])
    note = _cosigned(pair, 4)
    second = _revocation_digest(note)
    assert first != second

    gd_origin = origin_of("GD")
    h = hashlib.sha256(gd_origin.encode()).hexdigest()
    mo_note = pair.checkpoint("MO")
    zero = "00" * 32
    log_signer = NoteSigner.from_skey((gd_dir / "log.skey").read_text().strip())
    fork = signed_checkpoint(Checkpoint(gd_origin, 4, b"\x01" * 32), log_signer)
    impostor_skey, _ = NoteSigner.generate(gd_origin)
    impostor = signed_checkpoint(
        Checkpoint(gd_origin, 4, b"\x02" * 32), NoteSigner.from_skey(impostor_skey)
    )
    stranger_skey, _ = NoteSigner.generate("elsewhere.test/log")
    stranger = signed_checkpoint(
        Checkpoint("elsewhere.test/log", 1, b"\x03" * 32), NoteSigner.from_skey(stranger_skey)
    )
    snap, delta = "/revocation/snapshot/{digest}", "/revocation/delta/{from_digest}/{to_digest}"
    m = f"/mirror/{h}"
    get = "get"
    cases: list[tuple[str, str, str, str, bytes | None, int]] = [
        ("GD", snap, get, f"/revocation/snapshot/{second}", None, 200),
        ("GD", snap, get, "/revocation/snapshot/not-hex", None, 400),
        ("GD", snap, get, f"/revocation/snapshot/{zero}", None, 404),
        ("GD", delta, get, f"/revocation/delta/{first}/{second}", None, 200),
        ("GD", delta, get, f"/revocation/delta/{first}/{second[:-1]}", None, 400),
        ("GD", delta, get, f"/revocation/delta/{second}/{first}", None, 404),
        # C2SP tlog-witness, MO's witness asked about GD's log:
        ("MO", "/add-checkpoint", "post", "", _witness_request(4, note), 200),
        ("MO", "/add-checkpoint", "post", "", b"not a witness request", 400),
        ("MO", "/add-checkpoint", "post", "", b"old 4\n\n" + b"x" * 70_000, 400),
        ("MO", "/add-checkpoint", "post", "", _witness_request(4, impostor), 403),
        ("MO", "/add-checkpoint", "post", "", _witness_request(0, stranger), 404),
        ("MO", "/add-checkpoint", "post", "", _witness_request(2, note), 409),  # stale size
        ("MO", "/add-checkpoint", "post", "", _witness_request(4, fork), 409),  # fork
        ("MO", "/v1/alarms", get, "/v1/alarms", None, 200),
        ("MO", "/v1/alarms", get, "/v1/alarms?since=yesterday", None, 200),
        ("MO", "/v1/witness/status", get, "/v1/witness/status", None, 200),
        ("MO", "/v1/witness/status", get, "/v1/witness/status?origin=%ff", None, 200),
        ("MO", "/mirror/{h}/checkpoint", get, f"{m}/checkpoint", None, 200),
        ("MO", "/mirror/{h}/checkpoint", get, "/mirror/not-a-hash/checkpoint", None, 404),
        ("MO", "/mirror/{h}/tile/{subpath}", get, f"{m}/tile/0/000.p/4", None, 200),
        ("MO", "/mirror/{h}/tile/{subpath}", get, f"{m}/tile/entries/000.p/4", None, 200),
        ("MO", "/mirror/{h}/tile/{subpath}", get, f"{m}/tile/zz/000", None, 404),
        ("MO", "/mirror/{h}/tile/{subpath}", get, f"{m}/tile/0/000.p/9", None, 404),
        ("MO", f"/mirror/{{h}}{snap}", get, f"{m}/revocation/snapshot/{second}", None, 200),
        ("MO", f"/mirror/{{h}}{snap}", get, f"{m}/revocation/snapshot/xyz", None, 400),
        (
            "MO",
            f"/mirror/{{h}}{snap}",
            get,
            f"/mirror/{zero}/revocation/snapshot/{second}",
            None,
            404,
        ),
        ("MO", f"/mirror/{{h}}{delta}", get, f"{m}/revocation/delta/{first}/{second}", None, 200),
        ("MO", f"/mirror/{{h}}{delta}", get, f"{m}/revocation/delta/{first}/-", None, 400),
        ("MO", f"/mirror/{{h}}{delta}", get, f"{m}/revocation/delta/{zero}/{second}", None, 404),
        # GD's own witness cosigned MO's empty log; asked again it cosigns again.
        ("GD", "/add-checkpoint", "post", "", _witness_request(0, mo_note), 200),
    ]
    answers: dict[str, requests.Response] = {}
    for region, path, method, url, body, expected in cases:
        url = url or path
        r = requests.request(method, pair.url(region) + url, data=body, timeout=10)
        check_answer(path, method, r, expected)
        answers.setdefault(f"{region} {url}", r)

    # What the statuses mean, beyond the schema:
    stale = requests.post(
        f"{pair.url('MO')}/add-checkpoint", data=_witness_request(2, note), timeout=10
    )
    assert stale.headers["Content-Type"].startswith("text/x.tlog.size")
    assert stale.text == "4\n"  # tlog-witness: the size MO last cosigned
    alarms = requests.get(f"{pair.url('MO')}/v1/alarms", timeout=10).json()
    assert [a["kind"] for a in alarms["alarms"]] == ["same_size_other_root"]
    assert alarms["alarms"][0]["origin"] == gd_origin
    status = requests.get(f"{pair.url('MO')}/v1/witness/status", timeout=10).json()
    assert {x["origin"]: x["size"] for x in status["logs"]}[gd_origin] == 4
    assert status["alarms"] == 1
    for name in (f"/revocation/snapshot/{second}", f"/revocation/delta/{first}/{second}"):
        own = answers[f"GD {name}"].content
        mirrored = answers[f"MO {m}{name}"].content
        assert own == mirrored and len(own) > 0, name
    gd_bundle = requests.get(f"{pair.url('GD')}/tile/entries/000.p/4", timeout=10).content
    assert answers[f"MO {m}/tile/entries/000.p/4"].content == gd_bundle

    exercised = {(path, method) for _, path, method, *_ in cases}
    exercised |= {(path, method) for path, method, *_ in CASES}
    assert exercised == unsharded
