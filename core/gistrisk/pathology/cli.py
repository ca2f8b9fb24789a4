"""`gistrisk pathology ...` commands (placeholder until the pathology arm lands)."""

import typer

app = typer.Typer(no_args_is_help=True)
