"""Command-line group for `healthbridge issuer`."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """Issuer commands."""
