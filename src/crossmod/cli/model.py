"""`crossmod check|list|replay|necessity`: placeholder until the model checker lands."""

from __future__ import annotations

import click


@click.command()
def check() -> None:
    """Check a protocol (not yet implemented)."""


@click.command(name="list")
def list_cmd() -> None:
    """List the catalogue (not yet implemented)."""


@click.command()
def replay() -> None:
    """Replay a counterexample (not yet implemented)."""


@click.command()
def necessity() -> None:
    """Necessity table (not yet implemented)."""
