"""The `healthbridge` command: one subcommand group per component.

Each component owns its group in its own `cli` module; this module only assembles them.
"""

from __future__ import annotations

import os
import sys

import click

from credential.errors import CredentialError
from issuer.cli import cli as issuer_cli
from issuer.errors import IssuerError
from ledger.cli import cli as ledger_cli
from ledger.errors import LedgerError
from mobile_stub.cli import cli as wallet_cli
from mobile_stub.errors import WalletError
from verifier.cli import cli as verifier_cli
from verifier.errors import VerifierError

# Exit codes for failures that escape a subcommand's own handling (sysexits.h).
EXIT_DOMAIN_ERROR = 2
EXIT_IO_ERROR = 74
EXIT_INTERNAL_ERROR = 70
EXIT_INTERRUPTED = 130
DOMAIN_ERRORS = (CredentialError, LedgerError, IssuerError, VerifierError, WalletError)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="healthbridge")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    envvar="HEALTHBRIDGE_LOG_FORMAT",
    help="Log lines as text (default) or one JSON object each, with request ids.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    envvar="HEALTHBRIDGE_LOG_LEVEL",
    show_default=True,
)
def main(log_format: str | None, log_level: str) -> None:
    """HealthBridge: cross-region health codes on jointly witnessed ledgers."""
    from ledger.observability import configure_logging

    configure_logging(log_format, log_level)


main.add_command(ledger_cli, name="ledger")
main.add_command(issuer_cli, name="issuer")
main.add_command(verifier_cli, name="verifier")
main.add_command(wallet_cli, name="wallet")


@main.command()
@click.option("--once", is_flag=True, help="Exit after the story instead of serving.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the demo keeps its databases and keys (default: a temp folder).",
)
def demo(once: bool, workdir: str | None) -> None:
    """Bring up both regions on loopback with SQLite and play the whole story."""
    from healthbridge.demo import run_demo

    raise SystemExit(run_demo(once=once, workdir=workdir))


def run(argv: list[str] | None = None) -> None:
    """Console entry point: no traceback ever reaches a user.

    Subcommands report their own failures; anything that still escapes becomes one line
    on stderr and a non-zero exit. `HEALTHBRIDGE_DEBUG=1` shows the traceback instead,
    for whoever is debugging the command itself.
    """
    debug = os.environ.get("HEALTHBRIDGE_DEBUG", "") not in {"", "0"}
    try:
        main.main(args=argv, prog_name="healthbridge", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except DOMAIN_ERRORS as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_DOMAIN_ERROR)
    except OSError as e:
        if debug:
            raise
        click.echo(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), err=True)
        sys.exit(EXIT_IO_ERROR)
    except Exception as e:
        if debug:
            raise
        click.echo(
            f"error: unexpected {type(e).__name__}: {e} "
            "(run again with HEALTHBRIDGE_DEBUG=1 to see where)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL_ERROR)


if __name__ == "__main__":
    run()
