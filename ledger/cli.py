"""Command-line group for `healthbridge ledger`: init, serve, status, audit.

What it does: creates a node folder (keys with mode 0600, node.toml, migrated
database), serves a node (werkzeug threaded server; gunicorn via
`ledger.node:app_from_env()`), prints a node's status, and audits a log from its
public read API. What it does not: any ledger logic of its own.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click
import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.config import decode_ed25519_public_key, encode_ed25519_public_key

SECRET_MODE = 0o600


def write_secret(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the start (never world-readable, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _ed25519_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@click.group()
def cli() -> None:
    """Ledger node commands: init, serve, status, audit."""


@cli.command()
@click.option("--region", required=True, help="Region id, e.g. GD.")
@click.option("--origin", required=True, help="Log origin line (C2SP tlog-checkpoint).")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for keys, node.toml and (by default) the SQLite database.",
)
@click.option("--db", default=None, help="Database URL (default: SQLite ledger.db in DIR).")
@click.option(
    "--generate-root-key",
    is_flag=True,
    help="Also generate the region's Ed25519 root key (root.pem, mode 0600).",
)
@click.option(
    "--root-public-key",
    default=None,
    help="Base64 raw Ed25519 root public key (when the root key lives elsewhere).",
)
@click.option(
    "--writer-public-key",
    "writers",
    multiple=True,
    help="Base64 raw Ed25519 writer public key (repeatable), e.g. the issuer's.",
)
@click.option(
    "--generate-writer-key",
    is_flag=True,
    help="Also generate a writer key (writer.pem, mode 0600) and allow it.",
)
def init(
    region: str,
    origin: str,
    directory: str,
    db: str | None,
    generate_root_key: bool,
    root_public_key: str | None,
    writers: tuple[str, ...],
    generate_writer_key: bool,
) -> None:
    """Create a node: log signing key, optional root / writer keys, node.toml, database."""
    from ledger.note import NoteSigner
    from ledger.storage import StorageError, open_store

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if (d / "node.toml").exists():
        raise click.ClickException(f"{d / 'node.toml'} exists; refusing to overwrite a node")
    try:
        skey, vkey = NoteSigner.generate(origin)
    except Exception as e:
        raise click.ClickException(f"cannot make a log key named {origin!r}: {e}") from e
    write_secret(d / "log.skey", skey.encode() + b"\n")
    (d / "log.vkey").write_text(vkey + "\n", encoding="ascii")
    writer_keys: list[bytes] = []
    try:
        writer_keys = [decode_ed25519_public_key(w) for w in writers]
        root_pub = decode_ed25519_public_key(root_public_key) if root_public_key else None
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    if generate_root_key:
        root = Ed25519PrivateKey.generate()
        write_secret(d / "root.pem", _ed25519_pem(root))
        root_pub = _raw_public(root)
        (d / "root.pub").write_text(encode_ed25519_public_key(root_pub) + "\n")
    if root_pub is None:
        raise click.ClickException("give --root-public-key or --generate-root-key")
    if generate_writer_key:
        writer = Ed25519PrivateKey.generate()
        write_secret(d / "writer.pem", _ed25519_pem(writer))
        writer_keys.append(_raw_public(writer))
    # The root key may always write: it signs key entries itself (docs/ledger-node.md).
    if root_pub not in writer_keys:
        writer_keys.append(root_pub)
    url = db or "sqlite:///ledger.db"
    doc = {
        "region": region,
        "origin": origin,
        "log_key_file": "log.skey",
        "database_url": url,
        "root_public_key": encode_ed25519_public_key(root_pub),
        "writer_public_keys": [encode_ed25519_public_key(k) for k in writer_keys],
        "sequencer": {"max_batch_delay_s": 0.5, "max_batch_entries": 4096},
    }
    (d / "node.toml").write_bytes(tomli_w.dumps(doc).encode())
    from ledger.config import load_config

    cfg = load_config(d / "node.toml")
    try:
        open_store(cfg.database_url).dispose()
    except StorageError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"node {region} ready in {d}; log verifier key: {vkey}")


@cli.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="node.toml written by `ledger init`.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8480, show_default=True, type=int)
def serve(config_path: str, host: str, port: int) -> None:
    """Serve the node (threaded werkzeug server; one process = one sequencer)."""
    from werkzeug.serving import make_server

    from ledger.config import ConfigError, load_config
    from ledger.errors import LedgerError
    from ledger.node import EXTENSION_KEY, create_app

    try:
        app = create_app(load_config(config_path))
    except (ConfigError, LedgerError) as e:
        raise click.ClickException(str(e)) from e
    server = make_server(host, port, app, threaded=True)
    click.echo(f"ledger node listening on http://{host}:{server.server_port}", err=True)

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve_forever()
    finally:
        app.extensions[EXTENSION_KEY].sequencer.stop()
        app.extensions[EXTENSION_KEY].store.dispose()


@cli.command()
@click.argument("url")
def status(url: str) -> None:
    """Print a node's status (size, root, checkpoint, cosignatures) as JSON."""
    from ledger.client import LedgerClient, LedgerClientError

    try:
        click.echo(json.dumps(LedgerClient(url, timeout=5).status(), indent=2))
    except LedgerClientError as e:
        raise click.ClickException(str(e)) from e


@cli.command()
@click.argument("url")
@click.option(
    "--vkey", default=None, help="The log's note verifier key, obtained out of band (recommended)."
)
@click.option(
    "--root-public-key",
    default=None,
    help="Base64 raw Ed25519 root key of the region (default: as the node says).",
)
@click.option("--region", default=None, help="Region id (default: as the node says).")
def audit(url: str, vkey: str | None, root_public_key: str | None, region: str | None) -> None:
    """Re-verify a whole log from its checkpoint, tiles and entry bundles."""
    from ledger.audit import AuditError, audit_log
    from ledger.client import LedgerClient
    from ledger.errors import LedgerError
    from ledger.node import initial_state_for
    from ledger.note import NoteVerifier

    client = LedgerClient(url, timeout=30)
    try:
        if vkey is None or root_public_key is None or region is None:
            st = client.status()
            click.echo("warning: taking unspecified keys from the audited node itself", err=True)
            vkey = vkey or str(st["log_vkey"])
            root_public_key = root_public_key or str(st["root_public_key"])
            region = region or str(st["region"])
        verifier = NoteVerifier.from_vkey(vkey)
        initial = initial_state_for(region, decode_ed25519_public_key(root_public_key))

        def progress(done: int, total: int) -> None:
            if done == total or done % (256 * 64) == 0:
                click.echo(f"\r  {done}/{total} entries", nl=done == total, err=True)

        report = audit_log(client, verifier, initial, progress=progress)
    except AuditError as e:
        click.echo(f"AUDIT FAILED: {e}", err=True)
        sys.exit(2)
    except (LedgerError, ValueError, KeyError) as e:
        click.echo(f"audit could not run: {e}", err=True)
        sys.exit(3)
    click.echo(
        json.dumps(
            {
                "result": "consistent",
                "origin": report.origin,
                "size": report.size,
                "root_hash": report.root_hash.hex(),
                "entries_checked": report.entries_checked,
                "tiles_checked": report.tiles_checked,
                "entry_counts": dict(report.entry_counts),
                "cosigners": list(report.cosigners),
            },
            indent=2,
        )
    )


if __name__ == "__main__":  # python -m ledger.cli (used by the kill test)
    cli()
