"""The `tokenfab` command line: a thin typer app over `tokenfab.api`.

Each module in this package registers its commands with `register(app)`; none holds logic.
"""

from __future__ import annotations

import importlib

import typer

import tokenfab
from tokenfab.cli.common import App

app = App(
    name="tokenfab", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Co-design and economics of AI inference hardware: performance, $/Mtoken, chip cost.",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tokenfab {tokenfab.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    pass


_COMMAND_MODULES = ("estimate", "catalog", "cost", "validate", "serving", "chip", "study", "explore", "train", "fleet")


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"tokenfab.cli.{name}")
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name != f"tokenfab.cli.{name}":
                raise
            continue
        module.register(app)


_register_all()


def main() -> None:
    """Console entry point."""
    app()
