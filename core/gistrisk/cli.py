"""The ``gistrisk`` command line. Sub-command modules keep their heavy imports inside functions."""

from __future__ import annotations

import typer

import gistrisk
from gistrisk.model_cli import fit, predict, validate
from gistrisk.pathology.cli import app as pathology_app
from gistrisk.radiomics.cli import app as radiomics_app
from gistrisk.report.cli import report
from gistrisk.simulate.cli import demo, simulate

app = typer.Typer(
    name="gistrisk",
    help="Recurrence-free survival of GIST after surgery from CT radiomics, H&E deep features "
    "and clinical data, fused by a Cox model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gistrisk {gistrisk.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Recurrence-free survival models for GIST."""


app.command("fit")(fit)
app.command("validate")(validate)
app.command("predict")(predict)
app.command("report")(report)
app.command("simulate")(simulate)
app.command("demo")(demo)
app.add_typer(radiomics_app, name="radiomics", help="CT radiomics: one case or a whole cohort.")
app.add_typer(pathology_app, name="pathology", help="H&E slides: tiles, tissue classifier, slide features.")


def main() -> None:
    """Entry point: user errors print one clear line and exit 2 instead of a traceback."""
    from gistrisk.errors import GistRiskError

    try:
        app()
    except GistRiskError as e:
        typer.secho(f"error: {e}", err=True, fg="red")
        raise SystemExit(2)
