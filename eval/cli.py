"""`axr eval ...`: evaluation commands. Imports stay light here; work is imported inside commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from axr.reasoning.console import err, fail, make_backend, progress_bar

app = typer.Typer(help="Evaluate and benchmark reasoners.", no_args_is_help=True)
RUN_EPILOG = (
    "Examples:\n\n"
    "  axr eval run textile --limit 40                 (tiny VLM through hf on the textile images)\n\n"
    "  axr eval run mvtec_ad --data-dir ~/data/mvtec --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct "
    "--base-url http://127.0.0.1:8000/v1\n\n"
    "  axr eval run mvtec_ad --data-dir D --shard 0/4 --output runs/mv   (one of four machines; then run "
    "without --shard in the same folder to merge and finish)\n\n"
    "  axr eval run ped2                               (caption task: trigger stage, the paper's rule book)\n\n"
    "  axr eval run shtech --recheck uncertain --base-url http://127.0.0.1:8000/v1"
)


bench_app = typer.Typer(help="Throughput and cost benchmarks, settings side by side.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
wide = Console(width=max(Console().width, 160))  # tables of many columns: never cut to "set…" at 80 columns


@app.command("run", epilog=RUN_EPILOG)
def run(
    task: str = typer.Argument(..., help="a shipped task name (`axr eval validate` lists them) or a YAML path"),
    data_dir: str = typer.Option(None, help="override dataset.data_dir: a folder or data:SET/PATH"),
    rules: str = typer.Option(
        None, help="override pipeline.rules: a RuleBook YAML, AnomalyRuler rule file, or (caption tasks) 'induce'"
    ),
    backend: str = typer.Option(None, help="hf, vllm or openai (caption tasks: the re-check backend)"),
    model: str = typer.Option(None, help="model path, hub id or alias (smollm2, tiny-qwen2.5-vl)"),
    base_url: str = typer.Option(None, help="server URL for the openai backend"),
    recheck: str = typer.Option(None, help="caption tasks: none | uncertain | positives | all"),
    limit: int = typer.Option(None, help="run on this many samples (a fixed, mixed subset)"),
    shard: str = typer.Option("0/1", help="i/n: this machine's share of the samples"),
    retry_errors: bool = typer.Option(False, help="run again the samples recorded with an error"),
    output: Path = typer.Option(None, help="run folder (default runs/<task>); rerun to resume"),
):
    """Run an evaluation task: predictions.jsonl (resumable) and metrics.json in the run folder."""
    from axr.eval.datasets import LayoutError
    from axr.eval.tasks import TaskError, load_task
    from axr.reasoning.backends import BackendError
    from axr.reasoning.schema import SchemaError

    try:
        config = load_task(task)
    except TaskError as error:
        fail(str(error))
    if data_dir:
        config["dataset"]["data_dir"] = data_dir
    if rules:
        config["pipeline"]["rules"] = rules
    output = output or Path("runs") / config["task"]
    overrides = {"backend": backend, "model": model, "base_url": base_url}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        if config["dataset"]["adapter"] == "anomalyruler_captions":
            metrics = _run_captions(config, output, overrides, recheck)
        else:
            metrics = _run_samples(config, output, overrides, limit, shard, retry_errors)
    except (LayoutError, SchemaError, BackendError, ValueError) as error:
        fail(str(error))
    wanted = config.get("metrics", [])
    Console().print_json(
        json.dumps({"task": config["task"], **{k: metrics.get(k) for k in wanted}, "cost": metrics["cost"]})
    )
    if published := metrics.get("published"):
        err.print(_compared(metrics, published), highlight=False)
    if failed := metrics["cost"].get("request_errors"):
        err.print(
            f"{failed} requests got no answer from the server (recorded nowhere as a verdict; those frames "
            "keep their trigger score): run the same command again to retry them",
            highlight=False,
        )
    err.print(f"wrote {output}/metrics.json and predictions", highlight=False)


def _compared(metrics: dict, published: dict) -> str:
    """One line: AXR's pooled frame AUC on the held-out videos beside the published figures."""
    theirs = ", ".join(f"{k} {v:.1%}" for k, v in published.get("frame_auc_pooled", {}).items())
    ours = metrics["frame_auc_pooled"]
    return (
        f"pooled frame AUC {ours:.2%} on {metrics['split']['evaluated_videos']} held-out videos; "
        f"published ({published.get('source', 'paper')}): {theirs}"
    )


def _run_captions(config, output: Path, overrides: dict, recheck: str | None) -> dict:
    from axr.eval.caption_benchmark import run_caption_task

    config["pipeline"]["recheck"].update(overrides)
    if recheck:
        config["pipeline"]["recheck"]["policy"] = recheck

    def backend_factory(cfg):
        text_only = cfg["backend"] == "openai"  # captions are text: no image parts are sent
        return make_backend(
            cfg["backend"], cfg["model"], cfg.get("base_url"), concurrency=cfg.get("concurrency"), text_only=text_only
        )

    with progress_bar() as bar:
        job = bar.add_task("re-check", total=None, visible=False)

        def tick(done: int, total: int) -> None:
            bar.update(job, completed=done, total=total, visible=True)

        def say(message: str) -> None:
            bar.console.print(message, highlight=False)

        return run_caption_task(config, output, backend_factory, progress=say, tick=tick)


def _run_samples(config, output: Path, overrides: dict, limit, shard: str, retry_errors: bool) -> dict:
    from axr.eval.runner import RunOptions, parse_shard, run_task

    pipeline = config["pipeline"]
    pipeline.update(overrides)
    options = RunOptions(shard=parse_shard(shard), limit=limit, retry_errors=retry_errors)
    engine = make_backend(
        pipeline["backend"],
        pipeline["model"],
        pipeline.get("base_url"),
        batch_size=pipeline.get("batch"),
        concurrency=pipeline.get("concurrency"),
    )
    output.mkdir(parents=True, exist_ok=True)
    with engine, progress_bar() as bar:
        job = bar.add_task(config["task"], total=None)

        def on_start(total: int, pending: int) -> None:
            bar.update(job, total=total, completed=total - pending)
            if pending < total:
                err.print(f"resuming: {total - pending} of {total} samples already done", highlight=False)

        return run_task(config, output, engine, options, on_start=on_start, on_chunk=lambda n: bar.advance(job, n))


@app.command(
    "validate",
    epilog="Examples:\n\n  axr eval validate              (every shipped task)\n\n  axr eval validate my_task.yaml",
)
def validate(tasks: list[str] = typer.Argument(None, help="task names or YAML paths (default: every shipped task)")):
    """Load and check task files without a model: adapters, pipeline, metrics, rule books, judges."""
    from axr.eval.tasks import all_tasks, load_task, validate_task
    from axr.reasoning.schema import SchemaError

    failed = 0
    for name in tasks or all_tasks():
        try:
            errors, warnings = validate_task(load_task(name))
        except SchemaError as error:
            errors, warnings = [str(error)], []
        failed += bool(errors)
        err.print(f"{'[red]FAIL[/]' if errors else '[green]ok[/]  '} {name}", highlight=False)
        for line in errors:
            err.print(f"     error: {line}", highlight=False)
        for line in warnings:
            err.print(f"     [yellow]warning:[/] {line}", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command(
    "judge",
    epilog="Examples:\n\n"
    "  axr eval judge runs/cuva                 (the judges named in the task file)\n\n"
    "  axr eval judge runs/cuva --judge openai:Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1 "
    "--judge hf:smollm2   (two judges: scores of each and their agreement)",
)
def judge(
    run_dir: Path = typer.Argument(..., help="a run folder written by `axr eval run`"),
    judges: list[str] = typer.Option(None, "--judge", help="BACKEND:MODEL[@BASE_URL]; repeat for several judges"),
    text_metrics: bool = typer.Option(True, help="also ROUGE-L, BLEU and MiniLM similarity to the references"),
):
    """Grade the run's what/why/how explanations against the references with MMEval-style judges."""
    from axr.eval.judge import judge_run

    if not (run_dir / "predictions.jsonl").is_file():
        fail(f"{run_dir}: no predictions.jsonl (run `axr eval run` first)")
    specs = [_judge_spec(text) for text in judges or []] or _task_judges(run_dir)
    if not specs:
        fail(f"{run_dir}: the task names no judge; pass --judge BACKEND:MODEL[@BASE_URL]")
    embedder = None
    if text_metrics:
        from axr.reasoning.embedding import Embedder

        embedder = Embedder()
    engines = [
        (
            f"{spec['backend']}:{Path(spec['model']).name}",
            make_backend(spec["backend"], spec["model"], spec.get("base_url"), text_only=True),
        )
        for spec in specs
    ]
    with progress_bar() as bar:
        job = bar.add_task("judging", total=None)
        result = judge_run(run_dir, engines, embedder, on_chunk=lambda n: bar.advance(job, n))
    for _, engine in engines:
        engine.close()
    (run_dir / "judge.json").write_text(json.dumps(result, indent=2))
    table = Table("judge", *DIMENSION_COLUMNS, "overall", "samples", "unparsed", title="judge scores (0-10)")
    for name, row in result["judges"].items():
        table.add_row(
            name,
            *(f"{row[d]:.2f}" for d in DIMENSION_COLUMNS),
            f"{row['overall']:.2f}",
            str(row["samples"]),
            str(row["unparsed"]),
        )
    wide.print(table)
    err.print(f"wrote {run_dir}/judge.json ({result['judgeable']} samples with reference explanations)")


DIMENSION_COLUMNS = ("what", "why", "how")


def _judge_spec(text: str) -> dict:

    head, _, base_url = text.partition("@")
    backend, _, model = head.partition(":")
    if not backend or not model:
        fail(f"--judge {text!r}: expected BACKEND:MODEL[@BASE_URL], e.g. hf:smollm2")
    return {"backend": backend, "model": model, "base_url": base_url or None}


def _task_judges(run_dir: Path) -> list[dict]:
    task_file = run_dir / "task.json"
    if not task_file.is_file():
        return []
    judge_config = json.loads(task_file.read_text()).get("judge") or {}
    return judge_config.get("judges", [])


@app.command(
    "report",
    epilog="Examples:\n\n  axr eval report runs/textile            (writes runs/textile/report.html)\n\n"
    "  axr eval report runs/a --compare runs/b --out a_vs_b.html",
)
def report(
    run_dir: Path = typer.Argument(..., help="a run folder written by `axr eval run`"),
    compare: Path = typer.Option(None, help="a second run folder, shown side by side"),
    out: Path = typer.Option(None, help="the HTML file (default RUN/report.html)"),
):
    """One HTML file: summary, ROC/PR curves, confusion matrix, timelines, per-sample cards."""
    from axr.eval.report import write_report

    out = out or run_dir / "report.html"
    try:
        write_report([run_dir, *([compare] if compare else [])], out)
    except FileNotFoundError as error:
        fail(str(error))
    err.print(f"wrote {out}", highlight=False)


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
    from axr.eval.bench import bench_hf, bench_openai
    from axr.reasoning.backends import Sampling
    from axr.reasoning.local_models import resolve_model
    from axr.reasoning.vllm_server import CPU_SERVER_ARGS, CPU_SERVER_ENV, VLLMServer

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
            row.backend,
            Path(row.model).name,
            row.setting,
            str(row.requests),
            f"{row.seconds:.2f}",
            f"{row.requests_per_s:.2f}",
            f"{row.tokens_per_s:.1f}",
        )
    wide.print(table)
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        Console().print(
            f"{first.backend}: {second.setting} is {second.requests_per_s / first.requests_per_s:.1f}x "
            f"the requests/s of {first.setting}"
        )
    if out:
        out.write_text(json.dumps([r.as_dict() for r in rows], indent=2))


@bench_app.command(
    "task",
    epilog="Examples:\n\n"
    "  axr eval bench task textile --setting batch=1 --setting batch=8 --limit 64\n\n"
    "  axr eval bench task textile --setting backend=hf --setting "
    "backend=openai,model=Qwen/Qwen2.5-VL-3B-Instruct,base_url=http://127.0.0.1:8000/v1",
)
def bench_task_command(
    task: str = typer.Argument(..., help="a task name or YAML path"),
    settings: list[str] = typer.Option(..., "--setting", help="pipeline overrides key=value[,key=value]; repeat"),
    limit: int = typer.Option(32, help="samples per setting (the same fixed subset for each)"),
    data_dir: Path = typer.Option(None, help="override dataset.data_dir"),
    out: Path = typer.Option(None, help="also write the rows as JSON"),
):
    """Throughput and cost of one task under several settings, side by side, on the same samples."""
    import tempfile

    from axr.eval.bench import bench_task, parse_setting
    from axr.eval.datasets import LayoutError
    from axr.eval.tasks import load_task
    from axr.reasoning.schema import SchemaError

    try:
        config = load_task(task)
        parsed = [parse_setting(s) for s in settings]
    except (SchemaError, ValueError) as error:
        fail(str(error))
    if data_dir:
        config["dataset"]["data_dir"] = str(data_dir.resolve())

    def make_engine(pipeline):
        return make_backend(
            pipeline["backend"],
            pipeline["model"],
            pipeline.get("base_url"),
            batch_size=pipeline.get("batch"),
            concurrency=pipeline.get("concurrency"),
        )

    with tempfile.TemporaryDirectory(prefix="axr-bench-") as workdir:
        try:
            rows = bench_task(config, parsed, limit, workdir, make_engine)
        except (LayoutError, SchemaError, ValueError) as error:
            fail(str(error))
    columns = (
        "setting",
        "samples",
        "seconds",
        "samples_per_s",
        "model_calls",
        "tokens_in",
        "tokens_out",
        "tokens_out_per_s",
        "auroc",
        "unparsed_rate",
        "errors",
    )
    table = Table(*columns, title=f"{config['task']}: {limit} samples per setting, model loading not timed")
    for row in rows:
        table.add_row(*(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    wide.print(table)
    for row in rows[1:]:
        Console().print(
            f"{row['setting']}: {row['samples_per_s'] / rows[0]['samples_per_s']:.1f}x the samples/s "
            f"of {rows[0]['setting']}"
        )
    if out:
        out.write_text(json.dumps(rows, indent=2))


@bench_app.command(
    "gate",
    epilog="Examples:\n\n  axr eval bench gate                      (textile, tiny VLM: random features)\n\n"
    "  axr eval bench gate --model Qwen/Qwen2.5-VL-3B-Instruct --references 200 --limit 2000",
)
def bench_gate_command(
    task: str = typer.Argument("textile", help="a task whose train split holds normal images"),
    model: str = typer.Option("tiny-qwen2.5-vl", help="the VLM whose vision encoder gives the features"),
    references: int = typer.Option(100, help="normal images in the memory bank"),
    limit: int = typer.Option(None, help="test images to score (a fixed, mixed subset; default all)"),
    bank_size: int = typer.Option(4096, help="patches kept by the coreset"),
    data_dir: Path = typer.Option(None, help="override dataset.data_dir"),
    out: Path = typer.Option(None, help="also write the result as JSON"),
):
    """The visual gate alone: image AUROC, and the VLM calls it saves at a stated recall."""
    from axr.eval.bench import bench_gate
    from axr.eval.tasks import load_task

    config = load_task(task)
    if data_dir:
        config["dataset"]["data_dir"] = str(data_dir.resolve())
    row = bench_gate(config, model, references, limit, bank_size)
    table = Table("recall target", "recall", "sent to VLM", "calls saved", title=f"visual gate on {config['task']}")
    for item in row["at_recall"]:
        table.add_row(
            f"{item['recall_target']:.2f}",
            f"{item['recall']:.3f}",
            f"{item['share_sent_to_vlm']:.3f}",
            f"{item['calls_saved']:.3f}",
        )
    wide.print(table)
    note = " (random weights: the features carry no learned meaning)" if "tiny" in model else ""
    Console().print(
        f"{model}{note}: bank from {row['references']} normal images in {row['fit_seconds']} s; "
        f"{row['test_images']} test images at {row['images_per_s']:.1f} images/s; image AUROC {row['auroc']:.3f}, "
        f"AP {row['ap']:.3f}"
    )
    if out:
        out.write_text(json.dumps(row, indent=2))
