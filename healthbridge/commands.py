"""The command tree of `healthbridge`: one subcommand group per component.

Each component owns its group in its own `cli` module; this module only assembles them
into `main`. It holds no entry-point logic (healthbridge.cli: exit codes, the `demo`
command), so the demo can run real subcommands in-process (healthbridge.demo_world
`run_cli`) without importing the entry point that imports the demo.
"""

from __future__ import annotations

import click

from common.observability import configure_logging
from issuer.cli import cli as issuer_cli
from ledger.cli import cli as ledger_cli
from mobile_stub.cli import cli as wallet_cli
from verifier.cli import cli as verifier_cli


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
    configure_logging(log_format, log_level)


main.add_command(ledger_cli, name="ledger")
main.add_command(issuer_cli, name="issuer")
main.add_command(verifier_cli, name="verifier")
main.add_command(wallet_cli, name="wallet")
