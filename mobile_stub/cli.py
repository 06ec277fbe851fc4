"""Command-line group for `healthbridge wallet`."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """Resident wallet commands."""
