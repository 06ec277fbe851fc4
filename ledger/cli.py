"""Command-line group for `healthbridge ledger`."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """Ledger commands."""
