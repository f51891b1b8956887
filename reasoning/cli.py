"""The `axr` command. Heavy libraries (torch, transformers, vLLM, TRL) are imported inside commands only."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from eval.cli import app as eval_app
from reasoning.backends import BACKENDS, BackendError, Sampling, load_backend
from reasoning.media import MediaError
from reasoning.schema import SchemaError

app = typer.Typer(
    help="AXR: vision-language models that say whether something is anomalous, and why.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(eval_app, name="eval")
err = Console(stderr=True)

BACKEND_HELP = f"one of: {', '.join(BACKENDS)}"
MODEL_HELP = "a local folder, a hub id, or an offline alias: smollm2, tiny-qwen2.5-vl"


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
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
    from reasoning.local_models import resolve_model

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


@app.command(
    epilog="Examples:\n\n"
    "  axr caption images/ --backend hf --model tiny-qwen2.5-vl --out captions.jsonl\n\n"
    "  axr caption clip.mp4 --fps 2 --backend openai --model Qwen/Qwen2.5-VL-3B-Instruct "
    "--base-url http://127.0.0.1:8000/v1\n\n"
    "  axr caption images/ --backend openai --model smollm2 --text-only   (a text model reads image statistics)"
)
def caption(
    inputs: list[Path] = typer.Argument(..., help="image files, folders of images, or video files"),
    backend: str = typer.Option("hf", help=BACKEND_HELP),
    model: str = typer.Option("tiny-qwen2.5-vl", help=MODEL_HELP),
    out: Path = typer.Option(Path("captions.jsonl"), help="JSONL output, one record per image or frame"),
    subject: str = typer.Option("scene", help="scene (people and objects) or object (a product's surface)"),
    batch_size: int = typer.Option(8, help="images per model call (hf) or per dispatch (others)"),
    max_tokens: int = typer.Option(512, help="token budget per caption (captions are capped at 800 characters)"),
    repetition_penalty: float = typer.Option(1.1, help="above 1 discourages small models from looping"),
    cache: Path = typer.Option(Path.home() / ".cache" / "axr" / "captions.sqlite", help="SQLite caption cache"),
    no_cache: bool = typer.Option(False, help="neither read nor write the cache"),
    fps: float = typer.Option(None, help="frames per second to sample from videos"),
    stride: int = typer.Option(None, help="take every n-th frame of videos"),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", help="openai: server URL(s), comma-separated"),
    concurrency: int = typer.Option(8, help="openai: requests in flight"),
    timeout: float = typer.Option(120.0, help="openai: seconds per request"),
    text_only: bool = typer.Option(False, help="openai: the model reads text only; send image statistics"),
    adapter: str = typer.Option(None, help="hf/vllm: a peft LoRA adapter folder"),
):
    """Caption images or video frames (perception), batched and cached; records go to a JSONL file."""
    from reasoning.perception import CaptionCache, Captioner, collect_media

    if subject not in ("scene", "object"):
        fail(f"--subject must be scene or object, not {subject!r}")
    if fps is not None and stride is not None:
        fail("give either --fps or --stride, not both")
    for path in inputs:
        if not path.exists():
            fail(f"{path}: no such file or folder")
    try:
        items = list(collect_media(inputs, fps=fps, stride=stride))
    except MediaError as error:
        fail(str(error))
    if not items:
        fail("no images or videos found in the inputs")
    engine = make_backend(backend, model, base_url, adapter, batch_size, concurrency, timeout, text_only)
    store = None if no_cache else CaptionCache(cache)
    size = batch_size if backend == "hf" else max(batch_size, concurrency)
    sampling = Sampling(max_tokens=max_tokens, repetition_penalty=repetition_penalty)
    captioner = Captioner(engine, store, subject, size, sampling)
    counts = {"captioned": 0, "cached": 0, "failed": 0}
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink, progress_bar() as bar:
        task = bar.add_task("captioning", total=sum(1 for i in items if not isinstance(i, tuple)))
        try:
            for record in captioner.run(items, progress=lambda n: bar.advance(task, n)):
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                if "error" in record:
                    counts["failed"] += 1
                    err.print(f"[yellow]skipped[/] {record['error']}", highlight=False)
                else:
                    counts["cached" if record["cached"] else "captioned"] += 1
        except BackendError as error:
            fail(str(error))
    seconds = time.perf_counter() - started
    err.print(
        f"{counts['captioned']} captioned, {counts['cached']} from cache, {counts['failed']} failed "
        f"in {seconds:.1f} s -> {out}",
        highlight=False,
    )


@app.command(epilog="Examples:\n\n  axr models\n\n  axr models --prepare   (export SmolLM2, build the tiny VLM)")
def models(prepare: bool = typer.Option(False, help="build the offline models into the cache now")):
    """Backends that can run here, and the models available offline."""
    import importlib.util

    from reasoning import local_models

    table = Table("backend", "available", "what")
    needs = {"hf": "transformers", "vllm": "vllm", "openai": "httpx"}
    for name, (_, _, what) in BACKENDS.items():
        table.add_row(name, "yes" if importlib.util.find_spec(needs[name]) else "no", escape(what))
    Console().print(table)
    table = Table("alias", "where", "state")
    for alias, build in local_models.ALIASES.items():
        try:
            where, state = (str(build()), "ready") if prepare else ("(built on first use)", "available")
        except FileNotFoundError as error:
            where, state = str(error), "missing"
        table.add_row(alias, where, state)
    try:
        table.add_row("minilm (embeddings)", str(local_models.minilm_path()), "ready")
    except FileNotFoundError as error:
        table.add_row("minilm (embeddings)", str(error), "missing")
    Console().print(table)


def main() -> None:
    try:
        app()
    except (SchemaError, MediaError, BackendError) as error:
        fail(str(error))


if __name__ == "__main__":
    sys.exit(main())
