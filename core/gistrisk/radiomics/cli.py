"""`gistrisk radiomics ...` commands (placeholder until the radiomics arm lands)."""

import typer

app = typer.Typer(no_args_is_help=True)
