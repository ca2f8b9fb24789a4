"""The ``gistrisk`` command line.

Each sub-command's module is imported only when that sub-command runs (or help lists it): the model
commands pull in the survival and report stack (about 2 s and 300 MB), which a one-case radiomics
extraction must not pay for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:  # typer (0.2x) vendors its own click: its groups and commands are these, not click's
    from typer._click.core import Command, Context

import gistrisk
from gistrisk.errors import GistRiskError

# name -> (module, attribute, help for a sub-group); a function becomes a command, a Typer app a group.
COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "fit": ("gistrisk.model_cli", "fit", None),
    "validate": ("gistrisk.model_cli", "validate", None),
    "predict": ("gistrisk.model_cli", "predict", None),
    "harmonise": ("gistrisk.model_cli", "harmonise", None),
    "report": ("gistrisk.report.cli", "report", None),
    "simulate": ("gistrisk.simulate.cli", "simulate", None),
    "demo": ("gistrisk.simulate.cli", "demo", None),
    "radiomics": ("gistrisk.radiomics.cli", "app", "CT radiomics: one case or a whole cohort."),
    "pathology": ("gistrisk.pathology.cli", "app", "H&E slides: tiles, tissue classifier, slide features."),
}


def load_command(name: str) -> Command:
    """The click command for one sub-command, importing its module now."""
    module, attribute, group_help = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
        command.help = command.help or group_help
    else:
        single = typer.Typer()
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyCommands(TyperGroup):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else None


app = typer.Typer(
    name="gistrisk",
    cls=LazyCommands,
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


def main() -> None:
    """Entry point: user errors print one clear line and exit 2 instead of a traceback."""
    try:
        app()
    except GistRiskError as e:
        typer.secho(f"error: {e}", err=True, fg="red")
        raise SystemExit(2) from None
