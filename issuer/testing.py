"""Fixtures for the issuer's tests and benchmarks: a configured issuer context, device
keys and their auth headers, a real ledger node served over HTTP on loopback, and a
served issuer app. Not used by the service itself."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from common.b64 import b64url
from common.serving import serve_in_thread
from credential.keys import generate_private_key, public_key_der
from issuer import keymgmt, residents
from issuer.config import IssuerConfig
from issuer.context import Clock, IssuerContext
from issuer.delivery import InMemoryDelivery
from issuer.device_auth import DeviceAuth, signed_message
from ledger.log.entries import root_public_key_bytes
from ledger.log.note import NoteSigner
from ledger.node.app import EXTENSION_KEY, create_app
from ledger.node.config import NodeConfig


def make_context(
    tmp: Path,
    region: str = "GD",
    database_url: str = "",
    clock: Clock | None = None,
    **overrides: object,
) -> IssuerContext:
    cfg = IssuerConfig(
        region=region,
        data_dir=tmp / region,
        database_url=database_url,
        anchor_worker=False,
        **overrides,
    )  # type: ignore[arg-type]
    ctx = IssuerContext.open(cfg, clock=clock, delivery=InMemoryDelivery())
    ctx.keys.create_root_key()
    ctx.keys.create_writer_key()
    ctx.keys.create_token(cfg.authority_token_path)
    keymgmt.rotate_key(ctx)
    residents.seed_demo(ctx)
    return ctx


def device_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url(public_key_der(key))


def new_device() -> ec.EllipticCurvePrivateKey:
    key = generate_private_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def device_header(
    key: ec.EllipticCurvePrivateKey, holder_id: str, method: str, path: str, ts: int | None = None
) -> str:
    from cryptography.hazmat.primitives import hashes

    ts = int(time.time()) if ts is None else ts
    sig = key.sign(signed_message(method, path, ts), ec.ECDSA(hashes.SHA256()))
    return DeviceAuth(holder_id, ts, sig).render()


def enrol_directly(ctx: IssuerContext, doc: str, device: ec.EllipticCurvePrivateKey):
    from issuer import enrolment

    enrolment.request_code(ctx, doc, "127.0.0.1")
    assert isinstance(ctx.delivery, InMemoryDelivery)
    return enrolment.enrol(ctx, doc, ctx.delivery.sent[doc], device_key_text(device), "127.0.0.1")


@dataclass
class Served:
    url: str
    app: Flask
    server: object


@contextmanager
def serve(app: Flask) -> Iterator[Served]:
    # Port 0 (common.serving): the kernel picks a free port at bind time, so no other
    # process can take it between choosing and binding; stop() releases the socket.
    with serve_in_thread(app) as served:
        yield Served(served.url, app, served.server)


def node_config(ctx: IssuerContext, tmp: Path, database_url: str = "") -> NodeConfig:
    skey, _vkey = NoteSigner.generate(f"log.{ctx.region.lower()}.example")
    key_file = tmp / f"{ctx.region}-log.skey"
    key_file.write_text(skey)
    key_file.chmod(0o600)
    return NodeConfig(
        region=ctx.region,
        origin=f"log.{ctx.region.lower()}.example/healthbridge",
        log_key_file=key_file,
        database_url=database_url or f"sqlite:///{tmp / (ctx.region + '-ledger.db')}",
        root_public_key=root_public_key_bytes(ctx.keys.root_key()),
        writer_public_keys=(root_public_key_bytes(ctx.keys.writer_key()),),
        max_batch_delay_s=0.05,
    )


@contextmanager
def ledger_node(ctx: IssuerContext, tmp: Path, database_url: str = "") -> Iterator[Served]:
    app = create_app(node_config(ctx, tmp, database_url))
    try:
        with serve(app) as s:
            yield s
    finally:
        app.extensions[EXTENSION_KEY].sequencer.stop()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
