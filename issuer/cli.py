"""Command-line group for `healthbridge issuer`: init, serve, imports, keys, worker, seed.

Every command reads the issuer config from `--config FILE` (TOML, `[issuer]` table) or
HB_ISSUER_* environment variables. Errors are printed as one line, never a traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
import tomli_w

from issuer.cli_options import admin_token_option, config_option, friendly, metrics_options
from issuer.config import IssuerConfig, load_config, render_config

DEFAULT_CONFIG_NAME = "issuer.toml"
DEFAULT_SERVE_THREADS = 8  # request threads per gunicorn worker


def _config(path: str | None) -> IssuerConfig:
    return load_config(Path(path) if path else None)


def _progress(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total or '?'}", nl=False, err=True)
        if total and done >= total:
            click.echo("", err=True)

    return show


@click.group()
def cli() -> None:
    """Regional issuer: enrolment, issuance, anchoring, keys, conversion."""


@cli.command()
@click.option("--region", required=True, help="Region id, e.g. GD or MO.")
@click.option("--data-dir", type=click.Path(file_okay=False), required=True)
@click.option("--ledger-url", default=None, help="The region's ledger node URL.")
@click.option("--consortium", type=click.Path(dir_okay=False), default=None)
@click.option("--database-url", default="", help="Default: SQLite in the data dir.")
@click.option(
    "--root-passphrase-env",
    default=None,
    help="Name of an env variable holding a passphrase for the root key.",
)
@friendly
def init(
    region: str,
    data_dir: str,
    ledger_url: str | None,
    consortium: str | None,
    database_url: str,
    root_passphrase_env: str | None,
) -> None:
    """Write the config, create keys (mode 0600) and the database, register a key."""
    from issuer import keymgmt
    from issuer.context import IssuerContext

    cfg = IssuerConfig(
        region=region,
        data_dir=Path(data_dir).resolve(),
        database_url=database_url,
        ledger_url=ledger_url,
        consortium_path=Path(consortium).resolve() if consortium else None,
        root_key_passphrase_env=root_passphrase_env,
    )
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.data_dir / DEFAULT_CONFIG_NAME
    path.write_text(tomli_w.dumps(render_config(cfg)), encoding="utf-8")
    ctx = IssuerContext.open(cfg)
    if not cfg.root_key_path.exists():
        ctx.keys.create_root_key()
    if not cfg.writer_key_path.exists():
        ctx.keys.create_writer_key()
    if not cfg.authority_token_path.exists():
        ctx.keys.create_token(cfg.authority_token_path)
    from ledger.log.entries import root_public_key_bytes

    with ctx.sessions() as s:
        has_key = bool(keymgmt.list_keys(s))
    if not has_key:
        change = keymgmt.rotate_key(ctx)
        click.echo(f"signing key {change.kid} created; its KeyAdded entry waits in the outbox")
    import base64

    click.echo(f"config: {path}")
    click.echo(
        "root public key (ledger node root_public_key): "
        + base64.b64encode(root_public_key_bytes(ctx.keys.root_key())).decode()
    )
    click.echo(
        "writer public key (ledger node writer_public_keys): "
        + base64.b64encode(root_public_key_bytes(ctx.keys.writer_key())).decode()
    )


@cli.command()
@config_option
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8080, type=int)
@click.option("--workers", default=2, type=int, help="gunicorn worker processes")
@click.option(
    "--threads",
    default=DEFAULT_SERVE_THREADS,
    type=click.IntRange(1, 64),
    help="request threads per worker (gthread)",
)
@click.option("--dev", is_flag=True, help="Werkzeug's server instead of gunicorn.")
@metrics_options
@friendly
def serve(
    config_path: str | None,
    host: str,
    port: int,
    workers: int,
    threads: int,
    dev: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Serve the issuer API (gunicorn; --dev for werkzeug)."""
    cfg = _config(config_path)
    if dev:
        from common.observability import start_ops_server
        from issuer.app import create_app
        from issuer.metrics import CHECKS_KEY, METRICS_KEY

        app = create_app(cfg)
        if metrics_port is not None:
            checks = app.extensions[CHECKS_KEY]
            start_ops_server(
                app.extensions[METRICS_KEY], lambda: checks, metrics_host, metrics_port
            )
        app.run(host=host, port=port)
        return
    import os

    from issuer import gunicorn_conf
    from issuer.metrics import METRICS_HOST_ENV, METRICS_PORT_ENV

    env = dict(os.environ)
    if config_path:
        env["HB_ISSUER_CONFIG"] = str(Path(config_path).resolve())
    if metrics_port is not None:
        env[METRICS_PORT_ENV] = str(metrics_port)
        env[METRICS_HOST_ENV] = metrics_host
    os.execvpe(  # noqa: S606 -- replace this process with gunicorn, args fixed here
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(Path(gunicorn_conf.__file__)),
            "--workers",
            str(workers),
            # Threads, not gunicorn's default sync workers: concurrent credential
            # fetches of one worker share a group commit (issuer.group_commit); a
            # sync worker serves one request at a time, so groups never formed.
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--bind",
            f"{host}:{port}",
            "issuer.wsgi:app",
        ],
        env,
    )


@cli.command("import-residents")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@friendly
def import_residents(config_path: str | None, file: str) -> None:
    """Load residents from CSV (document_number,name,region)."""
    from issuer.context import IssuerContext
    from issuer.residents import add_residents, read_csv, read_csv_file

    ctx = IssuerContext.open(_config(config_path))
    rows = read_csv(read_csv_file(Path(file)), {"document_number", "name"})
    r = add_residents(ctx, rows, _progress("residents"))
    click.echo(f"residents added: {r.added}, unchanged or skipped: {r.unchanged}")


@cli.command("import-records")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@friendly
def import_records(config_path: str | None, file: str) -> None:
    """Load health records from CSV (document_number,kind,at,result)."""
    from issuer.context import IssuerContext
    from issuer.residents import import_records_csv, read_csv_file

    ctx = IssuerContext.open(_config(config_path))
    r = import_records_csv(ctx, read_csv_file(Path(file)), _progress("records"))
    click.echo(
        f"records added: {r.added}, duplicates: {r.unchanged}, "
        f"credentials revoked by status changes: {r.revoked}"
    )


@cli.command("seed-demo")
@config_option
@friendly
def seed_demo(config_path: str | None) -> None:
    """Add synthetic residents (Chinese and Portuguese names) with varied records."""
    from issuer.context import IssuerContext
    from issuer.residents import SEED, seed_demo

    cfg = _config(config_path)
    r = seed_demo(IssuerContext.open(cfg))
    click.echo(f"demo residents added: {r.added}")
    for _name, doc in SEED.get(cfg.region, []):
        click.echo(f"  document number {doc}")


@cli.command("dev-code")
@config_option
@click.option("--document", required=True, help="The document number the code was sent to.")
@friendly
def dev_code(config_path: str | None, document: str) -> None:
    """Print the newest code the development delivery sent to a document number.

    The delivery file names recipients by the issuer's keyed pseudonym, never by
    document number; this command computes the pseudonym with the issuer's key."""
    from issuer.delivery import read_delivered_code
    from issuer.keystore import KeyStore

    cfg = _config(config_path)
    code = read_delivered_code(cfg.delivery_file, KeyStore(cfg).delivery_ref(document))
    if code is None:
        raise click.ClickException(f"no code delivered to that document in {cfg.delivery_file}")
    click.echo(code)


@cli.command("anchor-worker")
@config_option
@click.option("--once", is_flag=True, help="Drain the outbox once and exit.")
@metrics_options
@friendly
def anchor_worker(
    config_path: str | None, once: bool, metrics_port: int | None, metrics_host: str
) -> None:
    """Anchor outbox rows on the region's log (also runs inside `serve`)."""
    import signal

    from issuer import anchor
    from issuer.context import IssuerContext

    ctx = IssuerContext.open(_config(config_path))
    port = anchor.ledger_port_for(ctx)
    if once:
        click.echo(f"anchored {anchor.drain(ctx, port)}; pending {anchor.pending_count(ctx)}")
        return
    ops = None
    if metrics_port is not None:
        from common.observability import start_ops_server
        from issuer.metrics import issuer_registry, readiness_checks

        checks = readiness_checks(ctx)
        ops = start_ops_server(issuer_registry(ctx), lambda: checks, metrics_host, metrics_port)
        click.echo(f"metrics and probes on {ops.url}/metrics", err=True)
    worker = anchor.AnchorWorker(ctx, port).start()
    click.echo("anchor worker running; Ctrl-C to stop", err=True)

    def _terminate(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt  # docker stop: finish like Ctrl-C

    signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        worker.stop()
        if ops is not None:
            ops.stop()


@cli.group()
def keys() -> None:
    """Signing keys: list, rotate, revoke."""


@keys.command("list")
@config_option
@friendly
def keys_list(config_path: str | None) -> None:
    from issuer import keymgmt
    from issuer.context import IssuerContext

    ctx = IssuerContext.open(_config(config_path))
    with ctx.sessions() as s:
        for k in keymgmt.list_keys(s):
            iso = datetime.fromtimestamp(k.not_after, UTC).date().isoformat()
            extra = f" compromised_at={k.compromised_at}" if k.compromised_at else ""
            click.echo(f"{k.kid}  {k.alg}  {k.state:<11}  until {iso}{extra}")


# Key changes are admin actions: they act as the admin whose API token is given (role
# key_admin), through the console's operations layer, so they are region- and
# role-checked and land on the hash-chained audit log (channel "cli") like the console's.
@keys.command("rotate")
@config_option
@admin_token_option
@friendly
def keys_rotate(config_path: str | None, token_file: str) -> None:
    """Create and register a new signing key; retire the active one."""
    from issuer.admin.cli import _ops, _who

    ops = _ops(config_path)
    pending = ops.rotate_key(_who(ops, token_file), ops.ctx.region)
    click.echo(f"new key {pending[0].ref}; {len(pending)} log entries queued")


@keys.command("revoke")
@config_option
@admin_token_option
@click.argument("kid")
@click.option(
    "--compromised-at",
    default=None,
    help="Unix seconds or ISO 8601: the key is untrusted from then on.",
)
@click.option("--reason", default="retired", help="Free text for the audit log.")
@friendly
def keys_revoke(
    config_path: str | None, token_file: str, kid: str, compromised_at: str | None, reason: str
) -> None:
    """Revoke a signing key (a compromise time, or a plain retirement)."""
    from issuer.admin.cli import _ops, _who
    from issuer.residents import parse_time

    when = parse_time(compromised_at) if compromised_at else None
    ops = _ops(config_path)
    ops.revoke_key(_who(ops, token_file), ops.ctx.region, kid, when, reason)
    what = f"compromised since {when}" if when is not None else "retired"
    click.echo(f"key {kid} {what}; KeyRevoked entry queued")


from issuer.admin.cli import admin  # noqa: E402 - admin accounts and console operations

cli.add_command(admin)
