"""The root `axr` command: the reasoning and model commands, with `axr eval`, `axr train` and `axr data`
mounted beside them. Only this module knows every group, so no library module imports a command module."""

from __future__ import annotations

import sys

from rich.markup import escape

from axr.eval.cli import app as eval_app
from axr.reasoning.backends import BackendError
from axr.reasoning.cli import app
from axr.reasoning.console import err
from axr.reasoning.data_cli import app as data_app
from axr.reasoning.media import MediaError
from axr.reasoning.schema import SchemaError
from axr.reasoning.serve_cli import app as serve_app
from axr.training.cli import app as train_app

app.registered_commands += serve_app.registered_commands  # models, serve, chat, ui: top-level commands too
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
app.add_typer(data_app, name="data")


def main(argv: list[str] | None = None) -> None:
    """The console script (`argv`: the arguments, default the process's): bad input anywhere below ends as one
    line on stderr and exit code 2."""
    try:
        app(args=argv)
    except (SchemaError, MediaError, BackendError, ValueError, FileNotFoundError) as error:
        err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)


def __getattr__(name: str):
    """`click_command`: the whole command tree as Click sees it, for the CLI reference the docs generate
    (`docs/cli.md`); built on request, so `axr --help` never pays for it."""
    if name == "click_command":
        import typer.main

        return typer.main.get_command(app)
    raise AttributeError(name)
