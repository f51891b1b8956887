"""What every `axr` command shares: one-line errors, progress bars, and the backend named by its options."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from axr.reasoning.backends import BACKENDS, BackendError, load_backend

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


def make_backend(
    backend: str,
    model: str,
    base_url: str | None = None,
    adapter: str | None = None,
    batch_size: int | None = None,
    concurrency: int | None = None,
    timeout_s: float | None = None,
    text_only: bool = False,
    trust_remote_code: bool = False,
):
    """The backend named on the command line, with only the options that backend takes."""
    from axr.reasoning.local_models import resolve_model

    if backend not in BACKENDS:
        fail(f"unknown backend {backend!r}; {BACKEND_HELP}")
    if backend == "openai":
        options = dict(base_url=base_url, concurrency=concurrency, timeout_s=timeout_s, supports_images=not text_only)
    else:
        options = dict(adapter=adapter, trust_remote_code=trust_remote_code or None)
        if backend == "hf":
            options["batch_size"] = batch_size
        model = resolve_model(model)
    try:
        return load_backend(backend, model, **options)
    except (BackendError, FileNotFoundError) as error:
        fail(str(error))


def backend_for(settings, text_only: bool = False):
    """The backend a task's settings name (a sample pipeline, a re-check or a judge: backend, model,
    base_url, and batch or concurrency where they have them)."""
    return make_backend(
        settings.backend,
        settings.model,
        settings.base_url,
        batch_size=getattr(settings, "batch", None),
        concurrency=getattr(settings, "concurrency", None),
        text_only=text_only,
    )


wide = Console(width=max(Console().width, 160))  # tables of many columns: never cut to "set…" at 80 columns
