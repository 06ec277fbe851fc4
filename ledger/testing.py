"""Fixtures for the ledger node's tests and benchmarks: key folders, a node config,
realistic entries, a node served on loopback. Not used by the node itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from common.serving import serve_in_thread
from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from ledger.clients.client import LedgerClient
from ledger.log.entries import (
    CredentialAnchored,
    KeyAdded,
    decode_entry,
    decode_leaf,
    encode_entry,
    root_public_key_bytes,
    sign_key_entry,
)
from ledger.log.note import NoteSigner
from ledger.log.tiles import decode_entry_bundle
from ledger.node.config import NodeConfig

REGION = "GD"
ORIGIN = "ledger.gd.healthbridge.test/log"


@dataclass
class NodeKeys:
    root: Ed25519PrivateKey
    writer: Ed25519PrivateKey
    skey_file: Path
    signer: NoteSigner
    issuer_der: bytes
    kid: str


def make_keys(folder: Path) -> NodeKeys:
    folder.mkdir(parents=True, exist_ok=True)
    skey, _vkey = NoteSigner.generate(ORIGIN)
    skey_file = folder / "log.skey"
    skey_file.write_text(skey + "\n")
    skey_file.chmod(0o600)
    issuer = generate_private_key(SigningAlg.ES256)
    der = public_key_der(issuer)
    return NodeKeys(
        Ed25519PrivateKey.generate(),
        Ed25519PrivateKey.generate(),
        skey_file,
        NoteSigner.from_skey(skey),
        der,
        key_id(der),
    )


def make_config(
    keys: NodeKeys, db_url: str, delay_s: float = 0.05, max_entries: int = 4096
) -> NodeConfig:
    root_pub = root_public_key_bytes(keys.root)
    return NodeConfig(
        region=REGION,
        origin=ORIGIN,
        log_key_file=keys.skey_file,
        database_url=db_url,
        root_public_key=root_pub,
        writer_public_keys=(root_public_key_bytes(keys.writer), root_pub),
        max_batch_delay_s=delay_s,
        max_batch_entries=max_entries,
    )


def key_added(keys: NodeKeys) -> bytes:
    entry = KeyAdded(
        region=REGION,
        kid=keys.kid,
        alg=SigningAlg.ES256,
        public_key_der=keys.issuer_der,
        not_before=0,
        not_after=None,
    )
    return encode_entry(sign_key_entry(entry, keys.root))


def anchor(keys: NodeKeys, status_index: int, expires_at: int = 4_000_000_000) -> bytes:
    """A realistic credential anchor: digest, status index, kid, expiry."""
    digest = hashlib.sha256(f"credential {status_index}".encode()).digest()
    return encode_entry(
        CredentialAnchored(
            region=REGION,
            digest=digest,
            status_index=status_index,
            kid=keys.kid,
            expires_at=expires_at,
        )
    )


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` over real HTTP on 127.0.0.1 in a thread; yields the base URL."""
    with serve_in_thread(app) as served:
        yield served.url


def log_entries(client: LedgerClient) -> list[object]:
    """Every entry of the node's log, decoded, read through its entry bundles."""
    size = client.size()
    out: list[object] = []
    for bundle in range(0, (size + 255) // 256):
        width = min(256, size - bundle * 256)
        data = client.entry_bundle(bundle, width if width < 256 else 256)
        out += [decode_entry(decode_leaf(x).entry_bytes) for x in decode_entry_bundle(data)]
    return out
