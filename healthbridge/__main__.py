"""`python -m healthbridge` runs the `healthbridge` command."""

from healthbridge.cli import run

run()
