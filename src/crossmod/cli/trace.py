"""`crossmod trace`: placeholder until the trace reader lands (issue 5)."""

from __future__ import annotations

import click


@click.command()
@click.argument("files", nargs=-1, required=True)
def trace(files: tuple[str, ...]) -> None:
    """Analyse IPIs hitting isolated CPUs in a trace (not yet implemented)."""
    raise click.UsageError("crossmod trace is not implemented yet")
