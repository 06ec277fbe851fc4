"""Command-line group for `healthbridge wallet`: the resident's phone app on a terminal.

Every command prints a one-line message and exits non-zero on a failure a resident
can meet (wrong code, issuer unreachable, expired credential, missing or corrupted
device key, wallet not enrolled); no traceback reaches the resident. The device key
and the document number are never printed.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from common.local_page import networks_option
from mobile_stub.client import HttpIssuer
from mobile_stub.errors import WalletError
from mobile_stub.qr import print_terminal, qr_version, save_png
from mobile_stub.wallet import Wallet, WalletView

DEFAULT_WALLET_DIR = Path("~/.healthbridge/wallet")
DEFAULT_SERVE_PORT = 8480
MAX_PASSPHRASE_BYTES = 1024  # bytes read from a passphrase file
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn WalletError into `error: <message>` on stderr and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WalletError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)

    return wrapper  # type: ignore[return-value]


def _utc(ts: int | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _read_passphrase(path: str | None) -> bytes | None:
    if path:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_PASSPHRASE_BYTES)
        except OSError as e:
            raise WalletError(f"cannot read passphrase file {path}: {e.strerror}") from e
        return data.rstrip(b"\r\n") or None
    env = os.environ.get("HEALTHBRIDGE_WALLET_PASSPHRASE")
    return env.encode("utf-8") if env else None


@click.group()
@click.option(
    "--dir",
    "wallet_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HEALTHBRIDGE_WALLET_DIR",
    default=DEFAULT_WALLET_DIR,
    show_default=True,
    help="Wallet folder (device key and credentials).",
)
@click.option(
    "--passphrase-file",
    envvar="HEALTHBRIDGE_WALLET_PASSPHRASE_FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="File holding the device key passphrase (or set HEALTHBRIDGE_WALLET_PASSPHRASE).",
)
@click.pass_context
@friendly
def cli(ctx: click.Context, wallet_dir: Path, passphrase_file: str | None) -> None:
    """Resident wallet: enrol, refresh, convert and show the health code."""
    folder = wallet_dir.expanduser()
    passphrase = _read_passphrase(passphrase_file)
    ctx.obj = {"dir": folder, "passphrase": passphrase}


def _wallet(ctx: click.Context) -> Wallet:
    return Wallet.open(ctx.obj["dir"], ctx.obj["passphrase"])


def _describe(view: WalletView) -> str:
    return (
        f"{view.region}: {view.masked_name} ({view.document_hint}) {view.colour.upper()}, "
        f"basis {view.basis}, valid until {_utc(view.expires_at)}"
    )


@cli.command()
@click.option("--issuer", "issuer_url", required=True, help="Issuer base URL.")
@click.option("--document", "document", required=True, help="Identity document number.")
@click.option("--code", default=None, help="One-time code (requested and prompted if absent).")
@click.pass_context
@friendly
def enroll(ctx: click.Context, issuer_url: str, document: str, code: str | None) -> None:
    """Enrol this device with a region's issuer."""
    wallet = _wallet(ctx)
    issuer = HttpIssuer(issuer_url)
    if code is None:
        delivery = wallet.request_code(issuer, document)
        click.echo(
            f"A one-time code was sent ({delivery.delivery}); valid {delivery.expires_in} s."
        )
        code = click.prompt("Enrolment code", type=str).strip()
    entry = wallet.enrol(issuer, document, code, time.time())
    view = wallet.view(time.time(), entry.region)
    click.echo(f"Enrolled. {_describe(view)}")


@cli.command()
@click.option("--region", default=None, help="Region (default: the home region).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@friendly
def status(ctx: click.Context, region: str | None, as_json: bool) -> None:
    """Show the stored credential(s) without going online."""
    wallet = _wallet(ctx)
    now = time.time()
    doc = wallet.document()
    regions = [region] if region else sorted(doc.entries)
    if not regions:
        wallet.entry()  # raises NotEnrolledError with the resident's message
    views = [wallet.view(now, r) for r in regions]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "home": doc.home,
                    "credentials": [
                        {k: v for k, v in vars(v).items() if k != "issuer_url"} for v in views
                    ],
                },
                sort_keys=True,
            )
        )
        return
    for v in views:
        note = " EXPIRED: run `wallet refresh`" if v.expired else ""
        note = note or (" (refresh due soon)" if v.refresh_due else "")
        home = " [home]" if v.region == doc.home else ""
        click.echo(f"{_describe(v)}{home}{note}")


@cli.command()
@click.option("--region", default=None, help="Region (default: the home region).")
@click.pass_context
@friendly
def refresh(ctx: click.Context, region: str | None) -> None:
    """Fetch a new credential if the status changed or expiry nears."""
    wallet = _wallet(ctx)
    entry = wallet.entry(region)
    result = wallet.refresh(HttpIssuer(entry.issuer_url), time.time(), entry.region)
    view = wallet.view(time.time(), result.region)
    word = "Updated" if result.changed else "Unchanged"
    click.echo(f"{word}. {_describe(view)}")


@cli.command()
@click.option("--to", "to_region", required=True, help="Target region, e.g. MO.")
@click.option("--issuer", "issuer_url", required=True, help="Target region's issuer URL.")
@click.option("--from", "from_region", default=None, help="Source region (default: home).")
@click.pass_context
@friendly
def convert(ctx: click.Context, to_region: str, issuer_url: str, from_region: str | None) -> None:
    """Convert the home credential into another region's credential."""
    wallet = _wallet(ctx)
    entry = wallet.convert(HttpIssuer(issuer_url), time.time(), to_region, from_region)
    click.echo(f"Converted. {_describe(wallet.view(time.time(), entry.region))}")


@cli.command()
@click.option("--region", default=None, help="Region (default: the home region).")
@click.option("--once", is_flag=True, help="Print one code and exit (for scripts).")
@click.option("--text", "text_only", is_flag=True, help="Print the QR text, not the QR.")
@click.pass_context
@friendly
def show(ctx: click.Context, region: str | None, once: bool, text_only: bool) -> None:
    """Show the refreshing QR in the terminal (a new code every window)."""
    wallet = _wallet(ctx)
    out = sys.stdout
    try:
        while True:
            now = time.time()
            shown = wallet.show(now, region)
            if text_only:
                click.echo(shown.qr_text)
            else:
                if not once:
                    click.clear()
                click.echo(_describe(shown.view))
                print_terminal(shown.qr_text, out)
                click.echo(f"QR version {qr_version(shown.qr_text)}")
            if once:
                return
            while (left := shown.window_end - time.time()) > 0:
                click.echo(f"\rNew code in {int(left) + 1:2d} s ", nl=False)
                time.sleep(min(1.0, left))
    except KeyboardInterrupt:
        click.echo("")


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--region", default=None, help="Region (default: the home region).")
@click.pass_context
@friendly
def qr(ctx: click.Context, out: Path, region: str | None) -> None:
    """Write the current window's QR to a PNG file."""
    shown = _wallet(ctx).show(time.time(), region)
    save_png(shown.qr_text, out)
    end = datetime.fromtimestamp(shown.window_end, UTC).strftime("%H:%M:%S UTC")
    click.echo(f"Wrote {out} (the code of the window ending {end}).")


@cli.command()
@click.option("--port", default=DEFAULT_SERVE_PORT, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--region", default=None, help="Region shown by default.")
@click.option(
    "--allow-from",
    multiple=True,
    metavar="CIDR",
    callback=networks_option,
    help="Client network also served (repeatable; default: loopback only). Binding "
    "0.0.0.0 alone does not open the page to other devices.",
)
@click.pass_context
@friendly
def serve(
    ctx: click.Context, port: int, host: str, region: str | None, allow_from: tuple[str, ...]
) -> None:
    """Serve the phone-sized wallet page."""
    from common.local_page import LOOPBACK_NETWORKS
    from common.serving import bind
    from mobile_stub.web import create_app

    app = create_app(
        {
            "WALLET_DIR": ctx.obj["dir"],
            "WALLET_PASSPHRASE": ctx.obj["passphrase"],
            "WALLET_REGION": region,
            "ALLOWED_NETWORKS": (*LOOPBACK_NETWORKS, *allow_from),
        }
    )
    try:
        server = bind(app, host, port)
    except OSError as e:
        raise WalletError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    click.echo(f"Wallet page on http://{host}:{port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("")
