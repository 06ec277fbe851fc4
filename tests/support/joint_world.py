"""The two-region (or three-region) joint world over real HTTP: each member's node,
witness and validating mirror served on loopback, a consortium file, stations.

No tests here; the joint-operation, compact-sync, compact-mirror, OpenAPI and issuer
tests build their worlds with these.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from flask import Flask
from werkzeug.serving import make_server

from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from ledger.clients.client import LedgerClient
from ledger.clients.sync import SyncClient, SyncedTrustState, mirror_prefix
from ledger.joint.api import JointServices
from ledger.log.consortium import Consortium
from ledger.log.entries import (
    CredentialAnchored,
    KeyAdded,
    encode_entry,
    sign_key_entry,
)
from ledger.node.app import EXTENSION_KEY, create_app
from ledger.node.config import NodeConfig
from tests.support.ledger_joint import (
    MemberKeys,
    consortium_of,
    member_keys,
    write_key,
)

WAIT_S = 15.0  # seconds; generous for a loaded CI machine


class Server:
    """A Flask app on a loopback port that can be taken down and brought back.

    The listening socket is bound once and kept until `close()`: "down" means every
    request gets 503 with `Connection: close`. Closing and re-binding the same port
    instead raced with other processes grabbing the freed port, and kept-alive
    connections to the old server's handler threads still reached the app, so a
    "down" node sometimes answered.
    """

    def __init__(self, app: Flask | None = None, port: int = 0) -> None:
        self.app = app
        self.down = threading.Event()
        self._srv = make_server("127.0.0.1", port, self._wsgi, threaded=True)
        self.port = self._srv.server_port
        self._t: threading.Thread | None = None

    def _wsgi(self, environ, start_response):  # type: ignore[no-untyped-def]
        if self.down.is_set() or self.app is None:
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Connection", "close")],
            )
            return [b'{"error": "down", "message": "taken down by the test"}']
        return self.app(environ, start_response)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.down.clear()
        if self._t is None:
            self._t = threading.Thread(target=self._srv.serve_forever, daemon=True)
            self._t.start()

    def stop(self) -> None:
        self.down.set()

    def close(self) -> None:
        if self._t is not None:
            self._srv.shutdown()
            self._t = None
        self._srv.server_close()


@dataclass
class Region:
    keys: MemberKeys
    joint: JointServices
    app: Flask | None
    server: Server
    writer: LedgerClient | None = None
    issuer_key: object = None
    kid: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.keys.port}"

    def submit(self, *entries: object) -> None:
        assert self.writer is not None
        self.writer.submit([encode_entry(e) for e in entries])  # type: ignore[arg-type]

    def register_key(self) -> None:
        self.issuer_key = generate_private_key()
        der = public_key_der(self.issuer_key)
        self.kid = key_id(der)
        entry = KeyAdded(self.keys.id, self.kid, SigningAlg.ES256, der, 0, None)
        self.submit(sign_key_entry(entry, self.keys.root_key))

    def anchor(self, index: int) -> None:
        digest = index.to_bytes(32, "big")
        self.submit(CredentialAnchored(self.keys.id, digest, index, self.kid, 4_000_000_000))

    def checkpoint(self) -> bytes:
        return requests.get(f"{self.url}/checkpoint", timeout=5).content


@dataclass
class World:
    consortium: Consortium
    regions: dict[str, Region]
    tmp: Path
    stations: list[SyncClient] = field(default_factory=list)

    def station(self, name: str = "station") -> tuple[SyncClient, SyncedTrustState]:
        client = SyncClient(self.consortium, self.tmp / f"{name}.db")
        self.stations.append(client)
        return client, SyncedTrustState(self.tmp / f"{name}.db")


def build_world(
    tmp: Path,
    ids: list[tuple[str, bool]],
    threshold: int | str,
    checkpoint_interval_s: float = 60.0,
) -> World:
    # Bind every port first (port 0: the kernel picks), then build the consortium
    # naming them: nothing can take a port between choosing and binding it.
    servers = [Server() for _ in ids]
    keys = [
        member_keys(mid, srv.port, witness_only=wo)
        for (mid, wo), srv in zip(ids, servers, strict=True)
    ]
    consortium = consortium_of(*keys, threshold=threshold)
    regions: dict[str, Region] = {}
    for k, server in zip(keys, servers, strict=True):
        folder = tmp / k.id
        folder.mkdir()
        wkey = write_key(folder / "witness.skey", k.witness_signer.skey())
        db = f"sqlite:///{folder / 'node.db'}"
        joint = JointServices.open(consortium, k.id, wkey, db)
        if k.witness_only:
            app = Flask(f"witness-{k.id}")
            for bp in joint.blueprints():
                app.register_blueprint(bp)
            server.app = app
            region = Region(k, joint, None, server)
        else:
            lkey = write_key(folder / "log.skey", k.log_signer.skey())
            root = k.root_public_raw()
            config = NodeConfig(
                region=k.id, origin=k.origin, log_key_file=lkey, database_url=db,
                root_public_key=root, writer_public_keys=(root,), max_batch_delay_s=0.02,
                cosign_hook=joint.collector, checkpoint_interval_s=checkpoint_interval_s,
            )  # fmt: skip
            app = create_app(config, extra_blueprints=joint.blueprints())
            joint.attach(app, retry_interval_s=0.3)
            server.app = app
            region = Region(k, joint, app, server)
            region.writer = LedgerClient(region.url, k.root_key, timeout=10)
        regions[k.id] = region
    for r in regions.values():
        r.server.start()
    return World(consortium, regions, tmp)


def shutdown(world: World) -> None:
    for s in world.stations:
        s.close()
    for r in world.regions.values():
        r.joint.stop()
        r.server.close()
        if r.app is not None:
            r.app.extensions[EXTENSION_KEY].sequencer.stop()
            r.app.extensions[EXTENSION_KEY].store.dispose()


def wait_for(pred, what: str, timeout: float = WAIT_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cosigned_by(region: Region, size: int, n: int) -> bool:
    note = region.checkpoint()
    lines = note.decode().split("\n\n", 1)[1]
    return f"\n{size}\n".encode() in note and lines.count("\u2014 ") >= n + 1


def mirror_of(world: World, origin_region: str, at: str) -> str:
    """The URL prefix of the mirror that region `at`'s node keeps of `origin_region`'s log."""
    return mirror_prefix(world.regions[at].url, world.regions[origin_region].keys.origin)
