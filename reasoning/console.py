"""What every `axr` command shares: one-line errors, progress bars, and the backend named by its options."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from axr.reasoning.backends import BACKENDS, BackendError, open_backend, settings_backend

err = Console(stderr=True)

BACKEND_HELP = f"one of: {', '.join(BACKENDS)}"
MODEL_HELP = "a local folder, a hub id, or an offline alias: smollm2, tiny-qwen2.5-vl"


def fail(message: str, code: int = 2) -> None:
    """End the command: one line on stderr (however narrow the terminal or log) and a non-zero exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)  # one line, even in a log
    raise typer.Exit(code)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
    )


def make_backend(*args, **options):
    """`open_backend` for a command: a backend that cannot be made ends the command in one line."""
    try:
        return open_backend(*args, **options)
    except (BackendError, FileNotFoundError) as error:
        fail(str(error))


def backend_for(settings, text_only: bool = False):
    """`settings_backend` for a command (a task's pipeline, re-check or judge settings)."""
    try:
        return settings_backend(settings, text_only)
    except (BackendError, FileNotFoundError) as error:
        fail(str(error))


wide = Console(width=max(Console().width, 160))  # tables of many columns: never cut to "set…" at 80 columns
