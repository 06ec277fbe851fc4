"""Command-line group for `healthbridge ledger`: init, serve, status, audit, consortium.

What it does: creates a node folder (log, witness and optional root / writer keys with
mode 0600, node.toml, member.toml with the public keys a consortium file needs, a
migrated database), serves a node alone or in joint operation (werkzeug threaded
server; gunicorn via `ledger.wsgi:app`), prints a node's status, audits a log from its
public read API, and writes a consortium file from the members' member.toml files.
What it does not: any ledger logic of its own.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click
import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.secret_file import write_secret
from common.serving import IDLE_TIMEOUT_S, bind
from ledger.node.config import decode_ed25519_public_key, encode_ed25519_public_key

MEMBER_FILE = "member.toml"


def _default_witness_name(origin: str) -> str:
    base = origin[: -len("/log")] if origin.endswith("/log") else origin
    return f"{base}/witness"


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
@click.option(
    "--url",
    "node_url",
    default="http://127.0.0.1:8480",
    show_default=True,
    help="The URL other members and stations reach this node at (for member.toml).",
)
@click.option("--name", "display_name", default=None, help="Display name (default: region).")
@click.option(
    "--witness-name",
    default=None,
    help="Witness key name (default: the origin with /log replaced by /witness).",
)
@click.option(
    "--consortium",
    "consortium_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Consortium file to run joint operation with (can also be given to `serve`).",
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
    node_url: str,
    display_name: str | None,
    witness_name: str | None,
    consortium_file: str | None,
) -> None:
    """Create a node: log and witness keys, optional root / writer keys, node.toml,
    member.toml (this member's public entry for the consortium file), database."""
    from ledger.log.note import NoteSigner
    from ledger.node.storage import StorageError, open_store

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
    # The root key may always write: it signs key entries itself (docs/ledger-protocol.md).
    if root_pub not in writer_keys:
        writer_keys.append(root_pub)
    from ledger.log.checkpoint import cosignature_vkey

    wname = witness_name or _default_witness_name(origin)
    try:
        w_skey, _ = NoteSigner.generate(wname)
    except Exception as e:
        raise click.ClickException(f"cannot make a witness key named {wname!r}: {e}") from e
    write_secret(d / "witness.skey", w_skey.encode() + b"\n")
    witness_vkey = cosignature_vkey(NoteSigner.from_skey(w_skey))
    (d / "witness.vkey").write_text(witness_vkey + "\n", encoding="ascii")
    member = {
        "id": region,
        "name": display_name or region,
        "log_origin": origin,
        "log_vkey": vkey,
        "root_public_key": encode_ed25519_public_key(root_pub),
        "witness_vkey": witness_vkey,
        "node_url": node_url.rstrip("/"),
    }
    (d / MEMBER_FILE).write_bytes(tomli_w.dumps(member).encode())
    url = db or "sqlite:///ledger.db"
    doc: dict[str, object] = {
        "region": region,
        "origin": origin,
        "log_key_file": "log.skey",
        "database_url": url,
        "root_public_key": encode_ed25519_public_key(root_pub),
        "writer_public_keys": [encode_ed25519_public_key(k) for k in writer_keys],
        "witness_key_file": "witness.skey",
        "sequencer": {"max_batch_delay_s": 0.5, "max_batch_entries": 4096},
    }
    if consortium_file is not None:
        doc["consortium_file"] = str(Path(consortium_file).resolve())
    (d / "node.toml").write_bytes(tomli_w.dumps(doc).encode())
    from ledger.node.config import load_config

    cfg = load_config(d / "node.toml")
    try:
        open_store(cfg.database_url).dispose()
    except StorageError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"node {region} ready in {d}; log verifier key: {vkey}")
    click.echo(f"witness verifier key: {witness_vkey}")
    click.echo(
        f"this member's consortium entry is in {d / MEMBER_FILE}; combine the members with "
        "`healthbridge ledger consortium init --member <member.toml> ... --out FILE`"
    )
    click.echo(tomli_w.dumps({"members": [member]}))


@cli.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="node.toml written by `ledger init`.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=8480,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port; 0 lets the system pick one (the bound address is printed on stderr).",
)
@click.option(
    "--consortium",
    "consortium_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Take part in joint operation (witness, mirror, cosignatures) with this file.",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Serve /metrics, /healthz and /readyz on this separate port (keep it private).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of the metrics listener (0.0.0.0 inside a container).",
)
@click.option(
    "--idle-timeout",
    default=IDLE_TIMEOUT_S,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds a client connection may stay silent before the node closes it.",
)
def serve(
    config_path: str,
    host: str,
    port: int,
    consortium_file: str | None,
    metrics_port: int | None,
    metrics_host: str,
    idle_timeout: float,
) -> None:
    """Serve the node (threaded werkzeug server; one process = one sequencer)."""
    from ledger.log.errors import LedgerError
    from ledger.serving import open_node, start_ops

    try:
        running = open_node(config_path, consortium_file)
    except (LedgerError, OSError) as e:
        raise click.ClickException(str(e)) from e
    try:
        # Connections silent for `idle_timeout` are closed (common.serving).
        server = bind(running.app, host, port, idle_timeout)
    except OSError as e:
        # A clear message and exit status 1, no traceback.
        running.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {e}") from e
    except SystemExit:
        # werkzeug itself reports "Address already in use" and exits with status 1.
        running.close()
        raise
    mode = "joint" if running.joint is not None else "standalone"
    # With --port 0 the kernel picks the port: this line names the bound address.
    click.echo(f"ledger node ({mode}) listening on http://{host}:{server.server_port}", err=True)
    ops = None
    if metrics_port is not None:
        try:
            ops = start_ops(running, metrics_host, metrics_port)
        except OSError as e:
            server.server_close()
            running.close()
            raise click.ClickException(
                f"cannot listen on {metrics_host}:{metrics_port} for metrics: {e}"
            ) from e
        click.echo(f"metrics and probes on {ops.url}/metrics", err=True)

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve_forever()
    finally:
        if ops is not None:
            ops.stop()
        running.close()


@cli.command()
@click.argument("url")
def status(url: str) -> None:
    """Print a node's status (size, root, checkpoint, cosignatures) as JSON."""
    from ledger.clients.client import LedgerClient, LedgerClientError

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
    from ledger.clients.audit import AuditError, audit_log
    from ledger.clients.client import LedgerClient
    from ledger.log.errors import LedgerError
    from ledger.log.note import NoteVerifier
    from ledger.node.app import initial_state_for

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


@cli.group()
def consortium() -> None:
    """Consortium file (the trust root) tools."""


@consortium.command("init")
@click.option(
    "--member",
    "members",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A member.toml written by `ledger init` (repeatable, one per member).",
)
@click.option(
    "--node-url",
    "urls",
    multiple=True,
    help="Override a member's node URL: ID=URL (repeatable).",
)
@click.option(
    "--threshold",
    default="all",
    show_default=True,
    help="Witnesses that must cosign: all, any, or a number.",
)
@click.option("--name", default="healthbridge", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def consortium_init(
    members: tuple[str, ...],
    urls: tuple[str, ...],
    threshold: str,
    name: str,
    out: str,
    force: bool,
) -> None:
    """Write a consortium TOML from the members' member.toml files (validated)."""
    import tomllib

    from ledger.log.consortium import ConsortiumError, build_consortium, write_consortium

    overrides: dict[str, str] = {}
    for item in urls:
        mid, sep, url = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected ID=URL, found {item!r}", param_hint="--node-url")
        overrides[mid] = url
    tables = []
    for path in members:
        try:
            table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise click.ClickException(f"cannot read member file {path}: {e}") from e
        if str(table.get("id")) in overrides:
            table["node_url"] = overrides.pop(str(table["id"]))
        tables.append(table)
    if overrides:
        raise click.ClickException(f"--node-url names no member: {sorted(overrides)}")
    t: int | str = int(threshold) if threshold.isdigit() else threshold
    try:
        # Nodes always commit the revocation snapshot; witnesses then insist on it.
        c = build_consortium(tables, threshold=t, name=name, require_revocation_commitment=True)
    except ConsortiumError as e:
        raise click.ClickException(f"invalid consortium: {e}") from e
    if Path(out).exists() and not force:
        raise click.ClickException(f"{out} exists; give --force to overwrite")
    write_consortium(out, c)
    click.echo(
        f"wrote {out}: members {', '.join(m.id for m in c.members)}; quorum {c.policy.describe()}"
    )


if __name__ == "__main__":  # python -m ledger.cli (used by the kill test)
    cli()
