"""`crossmod audit`: placeholder until the image auditor lands (issue 6)."""

from __future__ import annotations

import click


@click.command()
@click.argument("image")
def audit(image: str) -> None:
    """Audit a kernel image for mutable static branches on the entry path (not yet implemented)."""
    raise click.UsageError("crossmod audit is not implemented yet")
