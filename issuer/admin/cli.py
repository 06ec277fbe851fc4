"""`healthbridge issuer admin ...`: admin accounts, API tokens, and the console's
operations for scripting.

Account commands (create, list, passwd, disable, enable, token) are for whoever runs
the issuer host: they bootstrap the first admin. Operation commands act AS an admin:
they need that admin's API token (`--token-file`, mode 0600, or HB_ADMIN_TOKEN_FILE)
and go through the same checks and audit log as the console and the JSON API
(channel "cli"), so a GD admin's token cannot touch MO credentials here either.
Errors print as one line, never a traceback.
"""

from __future__ import annotations

import getpass
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from issuer.audit import Channel
from issuer.cli_options import admin_token_option, config_option, friendly

if TYPE_CHECKING:  # imported when a command runs: the command-line startup stays light
    from issuer.admin.ops import AdminOps, Who
    from issuer.context import IssuerContext


def _context(config_path: str | None) -> IssuerContext:
    from issuer.config import load_config
    from issuer.context import IssuerContext

    return IssuerContext.open(load_config(Path(config_path) if config_path else None))


def _ops(config_path: str | None) -> AdminOps:
    from issuer.admin.ops import AdminOps
    from issuer.ledger_state import ConsortiumCheckpoints

    ctx = _context(config_path)
    return AdminOps(ctx, ConsortiumCheckpoints.from_context(ctx))


def _who(ops: AdminOps, token_file: str) -> Who:
    from issuer.admin import accounts_db
    from issuer.admin.ops import Who
    from issuer.keystore import read_secret

    token = read_secret(Path(token_file)).decode("ascii", "replace").strip()
    p = accounts_db.authenticate_token(ops.ctx.sessions, token, ops.ctx.now())
    return Who(p, f"cli@{socket.gethostname()}"[:64], Channel.CLI)


def _password(password_file: str | None) -> str:
    if password_file:
        from issuer.keystore import read_secret

        return read_secret(Path(password_file)).decode("utf-8").rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.ClickException("no terminal: give --password-file (mode 0600)")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise click.ClickException("the two passwords differ")
    return first


def _target(text: str) -> tuple[str, int]:
    region, _, idx = text.partition(":")
    if not idx.isdigit() or not region.isalpha():
        raise click.BadParameter(f"expected REGION:STATUS_INDEX like GD:17, found {text!r}")
    return region.upper(), int(idx)


@click.group("admin")
def admin() -> None:
    """Admin accounts and console operations from the command line."""


# -- accounts ----------
@admin.command()
@config_option
@click.option("--username", required=True)
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    help="viewer, operator, key_admin or auditor (repeatable).",
)
@click.option("--password-file", type=click.Path(dir_okay=False), default=None)
@friendly
def create(
    config_path: str | None, username: str, roles: tuple[str, ...], password_file: str | None
) -> None:
    """Create an admin of this issuer's region."""
    from issuer.admin import accounts_db
    from issuer.admin.accounts import parse_roles

    ctx = _context(config_path)
    p = accounts_db.create_account(
        ctx.sessions,
        username,
        ctx.region,
        parse_roles(",".join(roles)),
        _password(password_file),
        ctx.now(),
    )
    click.echo(
        f"created {p.username} ({', '.join(sorted(r.value for r in p.roles))}) in region {p.region}"
    )


@admin.command("list")
@config_option
@friendly
def list_(config_path: str | None) -> None:
    """List admins (never their password hashes)."""
    from issuer.admin import accounts_db

    for a in accounts_db.list_accounts(_context(config_path).sessions):
        state = "disabled" if a.disabled else "active"
        click.echo(f"{a.username}\t{a.region}\t{a.roles}\t{state}")


@admin.command()
@config_option
@click.option("--username", required=True)
@click.option("--password-file", type=click.Path(dir_okay=False), default=None)
@friendly
def passwd(config_path: str | None, username: str, password_file: str | None) -> None:
    """Set an admin's password (ends their console sessions and revokes their API tokens)."""
    from issuer.admin import accounts_db

    accounts_db.set_password(_context(config_path).sessions, username, _password(password_file))
    click.echo(f"password of {username} changed")


@admin.command()
@config_option
@click.option("--username", required=True)
@click.option("--enable", is_flag=True, help="Enable again instead of disabling.")
@friendly
def disable(config_path: str | None, username: str, enable: bool) -> None:
    """Disable an admin (sessions end and API tokens are revoked for good)."""
    from issuer.admin import accounts_db

    accounts_db.set_disabled(_context(config_path).sessions, username, not enable)
    click.echo(f"{username} {'enabled' if enable else 'disabled'}")


@admin.command()
@config_option
@click.option("--username", required=True)
@click.option("--label", default="script", help="What the token is for.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    help="Where to write the token (created with mode 0600).",
)
@friendly
def token(config_path: str | None, username: str, label: str, output: str) -> None:
    """Issue an API token for an admin (stored hashed; written once to --output)."""
    from common.secret_file import write_secret
    from issuer.admin import accounts_db

    ctx = _context(config_path)
    clear = accounts_db.issue_token(ctx.sessions, username, label, ctx.now())
    write_secret(Path(output), clear.encode("ascii") + b"\n", overwrite=True)
    click.echo(f"token for {username} written to {output} (id {clear.split('_')[1][:8]})")


@admin.command("revoke-token")
@config_option
@click.argument("token_id")
@friendly
def revoke_token(config_path: str | None, token_id: str) -> None:
    """Revoke an API token by its id."""
    from issuer.admin import accounts_db

    accounts_db.revoke_token(_context(config_path).sessions, token_id)
    click.echo(f"token {token_id} revoked")


# -- operations ----------
@admin.command()
@config_option
@admin_token_option
@click.option(
    "--by",
    type=click.Choice(["status_index", "credential_id", "document_number"]),
    default="status_index",
)
@click.option("--region", default=None, help="Default: the issuer's region.")
@click.argument("value")
@friendly
def find(config_path: str | None, token_file: str, by: str, region: str | None, value: str) -> None:
    """Find credentials and show their ledger history."""
    ops = _ops(config_path)
    who = _who(ops, token_file)
    for d in ops.find(who, region or ops.ctx.region, by, value):
        click.echo(
            f"{d.region}:{d.status_index}\t{d.state}\t{d.colour}\t{d.masked_name}\t"
            f"…{d.document_hint}\texpires {d.expires_at}"
        )
        for h in d.history:
            click.echo(f"    {h.kind}\tlog index {h.log_index}\t{h.state.value}")


@admin.command()
@config_option
@admin_token_option
@click.argument("target")
@click.option("--reason", required=True, help="Revocation reason code, e.g. fraud.")
@click.option("--note", default="")
@friendly
def revoke(config_path: str | None, token_file: str, target: str, reason: str, note: str) -> None:
    """Revoke a credential: TARGET is REGION:STATUS_INDEX."""
    ops = _ops(config_path)
    region, idx = _target(target)
    p = ops.revoke(_who(ops, token_file), region, idx, reason, note)
    click.echo(f"revoked {region}:{idx}; log entry {p.outbox_id} pending")


@admin.command()
@config_option
@admin_token_option
@click.argument("target")
@click.option("--reason", required=True)
@click.option("--note", default="")
@friendly
def reinstate(
    config_path: str | None, token_file: str, target: str, reason: str, note: str
) -> None:
    """Reinstate a revoked credential: TARGET is REGION:STATUS_INDEX."""
    ops = _ops(config_path)
    region, idx = _target(target)
    p = ops.reinstate(_who(ops, token_file), region, idx, reason, note)
    click.echo(f"reinstated {region}:{idx}; log entry {p.outbox_id} pending")


@admin.command("bulk-revoke")
@config_option
@admin_token_option
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--region", default=None, help="Default: the issuer's region.")
@click.option("--reason", required=True)
@click.option("--note", default="")
@click.option("--yes", is_flag=True, help="Skip the confirmation question.")
@friendly
def bulk_revoke(
    config_path: str | None,
    token_file: str,
    csv_file: str,
    region: str | None,
    reason: str,
    note: str,
    yes: bool,
) -> None:
    """Revoke every status index in a CSV, after a preview."""
    import time

    ops = _ops(config_path)
    who = _who(ops, token_file)
    p = ops.bulk_preview(who, region or ops.ctx.region, Path(csv_file).read_bytes(), reason, note)
    click.echo(
        f"{p.total} status indices: {p.unknown} unknown, {p.already_revoked} already "
        f"revoked, {len(p.invalid_lines)} invalid line(s)"
    )
    for line in p.invalid_lines:
        click.echo(f"  {line}")
    if not yes:
        click.confirm(f"Revoke these {p.total} credentials?", abort=True)
    ops.bulk_confirm(who, p.job_id)
    with click.progressbar(length=p.total, label="revoking", file=sys.stderr) as bar:
        shown = 0
        while True:
            s = ops.bulk_status(who, p.job_id)
            bar.update(s.done - shown)
            shown = s.done
            if s.state in ("finished", "failed"):
                break
            time.sleep(0.2)
    click.echo(s.message)
    if s.state == "failed":
        raise SystemExit(1)


@admin.command("keys")
@config_option
@admin_token_option
@friendly
def keys(config_path: str | None, token_file: str) -> None:
    """List signing keys, active and past."""
    ops = _ops(config_path)
    for k in ops.keys(_who(ops, token_file)):
        click.echo(
            f"{k.kid}\t{k.alg}\t{k.state}\tnot_after={k.not_after}\t"
            f"compromised_at={k.compromised_at}"
        )


@admin.command("rotate-key")
@config_option
@admin_token_option
@click.option("--region", default=None)
@friendly
def rotate_key(config_path: str | None, token_file: str, region: str | None) -> None:
    """Create and register a new signing key; retire the active one."""
    ops = _ops(config_path)
    ps = ops.rotate_key(_who(ops, token_file), region or ops.ctx.region)
    click.echo(f"rotated; log entries {', '.join(str(p.outbox_id) for p in ps)} pending")


@admin.command("revoke-key")
@config_option
@admin_token_option
@click.argument("kid")
@click.option("--region", default=None)
@click.option(
    "--compromised-at",
    type=int,
    default=None,
    help="Unix seconds from when the key is untrusted (omit: plain retirement).",
)
@click.option("--reason", required=True)
@click.option("--yes", is_flag=True)
@friendly
def revoke_key(
    config_path: str | None,
    token_file: str,
    kid: str,
    region: str | None,
    compromised_at: int | None,
    reason: str,
    yes: bool,
) -> None:
    """Revoke a signing key (two steps: this asks again unless --yes)."""
    ops = _ops(config_path)
    who = _who(ops, token_file)
    if not yes:
        what = f"compromised at {compromised_at}" if compromised_at else "retired"
        click.confirm(f"Revoke key {kid} as {what}?", abort=True)
    ps = ops.revoke_key(who, region or ops.ctx.region, kid, compromised_at, reason)
    click.echo(f"key {kid} revoked; log entries {', '.join(str(p.outbox_id) for p in ps)}")


@admin.command("audit-export")
@config_option
@admin_token_option
@click.option("--output", type=click.Path(dir_okay=False), default="-")
@friendly
def audit_export(config_path: str | None, token_file: str, output: str) -> None:
    """Verify the audit log's hash chain and write it as CSV."""
    ops = _ops(config_path)
    data = ops.audit_export(_who(ops, token_file))
    if output == "-":
        click.echo(data, nl=False)
    else:
        Path(output).write_text(data, encoding="utf-8")
        click.echo(f"audit log written to {output}", err=True)


@admin.command("audit-verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--expect-head",
    default=None,
    help="Hex hash the last row must have (e.g. from the region's AuditDigest entry).",
)
@friendly
def audit_verify(file: str, expect_head: str | None) -> None:
    """Re-verify an audit CSV export end to end: every cell decoded, every row hash
    recomputed, every link to the row before checked. Needs no database or token."""
    from issuer.audit import AuditChainError
    from issuer.audit_csv import verify_export

    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise AuditChainError(f"{file}: expected UTF-8 text") from e
    n, head = verify_export(text)
    if expect_head is not None and head.hex() != expect_head.strip().lower():
        raise AuditChainError(f"expected head {expect_head}, found {head.hex()}")
    click.echo(f"{n} audit rows verified; head {head.hex()}")


@admin.command("anchor-audit")
@config_option
@friendly
def anchor_audit(config_path: str | None) -> None:
    """Queue the audit log's digest (AuditDigest entry) for the region's log now."""
    from issuer import audit

    ctx = _context(config_path)
    box = audit.anchor_digest(ctx.sessions, ctx.region, ctx.now())
    click.echo("nothing new to anchor" if box is None else f"audit digest queued as entry {box}")
