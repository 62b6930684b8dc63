"""The `kinns trace` command (being built)."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def trace() -> None:
    """Trace a probe through the cluster (not built yet)."""
    raise click.ClickException("kinns trace is not built yet")
