"""The `healthbridge` command's entry point: the `demo` subcommand and `run()`, which
turns any failure into one line and an exit code.

The component subcommands are assembled in healthbridge.commands; `main` is that group,
re-exported here for `python -m healthbridge.cli` and callers that run it in-process.
"""

from __future__ import annotations

import os
import sys

import click

from credential.errors import CredentialError
from healthbridge.commands import main
from issuer.errors import IssuerError
from ledger.log.errors import LedgerError
from mobile_stub.errors import WalletError
from verifier.errors import VerifierError

# Exit codes for failures that escape a subcommand's own handling (sysexits.h).
EXIT_DOMAIN_ERROR = 2
EXIT_IO_ERROR = 74
EXIT_INTERNAL_ERROR = 70
EXIT_INTERRUPTED = 130
DOMAIN_ERRORS = (CredentialError, LedgerError, IssuerError, VerifierError, WalletError)
__all__ = ["main", "run"]


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
    # Imported here so that every other subcommand starts without the demo's modules
    # (no cycle: the demo imports healthbridge.commands, never this module).
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
