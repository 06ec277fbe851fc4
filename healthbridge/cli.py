"""The `healthbridge` command: one subcommand group per component.

Each component owns its group in its own `cli` module; this module only assembles them.
"""

from __future__ import annotations

import click

from issuer.cli import cli as issuer_cli
from ledger.cli import cli as ledger_cli
from mobile_stub.cli import cli as wallet_cli
from verifier.cli import cli as verifier_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="healthbridge")
def main() -> None:
    """HealthBridge: cross-region health codes on jointly witnessed ledgers."""


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


if __name__ == "__main__":
    main()
