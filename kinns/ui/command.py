"""The `kinns ui` command (being built)."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def ui() -> None:
    """Serve a live web view of the cluster (not built yet)."""
    raise click.ClickException("kinns ui is not built yet")
