"""`axr eval run | validate | judge | report`, and `axr eval bench` (eval/bench_cli.py): parse, delegate to
the library, print. Work is imported inside commands, so `axr --help` stays fast."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from axr.eval.bench_cli import app as bench_app
from axr.reasoning.console import backend_for, err, fail, make_backend, progress_bar, wide

app = typer.Typer(help="Evaluate and benchmark reasoners.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
RUN_EPILOG = (
    "Examples:\n\n"
    "  axr eval run textile --limit 40                 (tiny VLM through hf on the textile images)\n\n"
    "  axr eval run mvtec_ad --data-dir ~/data/mvtec --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct "
    "--base-url http://127.0.0.1:8000/v1\n\n"
    "  axr eval run mmad --data-dir D --engine ray --ray-address auto --workers 8 --backend vllm "
    "--model Qwen/Qwen2.5-VL-7B-Instruct   (8 vLLM replicas on a Ray cluster)\n\n"
    "  axr eval run ped2                               (caption task: trigger stage, the paper's rule book)\n\n"
    "  axr eval run shtech --recheck uncertain --base-url http://127.0.0.1:8000/v1\n\n"
    "  axr eval run shtech --set split.scene_pattern=null --set pipeline.smoothing.window=31   (any task field)"
)


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
    assignments: list[str] = typer.Option(None, "--set", help="any task field: dotted.key=value (YAML value)"),
    limit: int = typer.Option(None, help="run on this many samples (a fixed, mixed subset)"),
    shard: str = typer.Option("0/1", help="i/n: this machine's share of the samples"),
    retry_errors: bool = typer.Option(
        False, help="also run again samples whose media could not be read (any rerun retries unanswered requests)"
    ),
    output: Path = typer.Option(None, help="run folder (default runs/<task>); rerun to resume"),
    engine: str = typer.Option("local", help="local (this process) or ray (an actor pool on a Ray cluster)"),
    ray_address: str = typer.Option(None, help="ray: a running cluster ('auto' on its nodes); default: start one"),
    workers: int = typer.Option(1, min=1, help="ray: model replicas, each an actor holding one backend"),
    encoding: str = typer.Option(None, help="override dataset.encoding: caption files' encoding (e.g. latin-1)"),
):
    """Run an evaluation task: predictions.jsonl (resumable) and metrics.json in the run folder."""
    from axr.eval.datasets import LayoutError
    from axr.eval.evaluate import evaluate
    from axr.eval.runner import RunOptions, parse_shard
    from axr.eval.tasks import load_task, task_overrides
    from axr.reasoning.backends import BackendError
    from axr.reasoning.schema import SchemaError

    try:
        overrides = task_overrides(
            assignments,
            **{"dataset.data_dir": data_dir, "pipeline.rules": rules, "pipeline.recheck.policy": recheck},
            **{"dataset.encoding": encoding},
        )
        config = load_task(task, overrides, endpoint={"backend": backend, "model": model, "base_url": base_url})
        options = RunOptions(parse_shard(shard), limit, retry_errors, engine, ray_address, workers)
    except (SchemaError, ValueError) as error:
        fail(str(error))
    output = output or Path("runs") / config.task
    with progress_bar() as bar:
        captions = config.mode == "captions"  # its bar follows induction and re-check, shown once there is one
        job = bar.add_task(config.task, total=None, visible=not captions)

        def show(done: int, total: int, phase: str | None = None) -> None:
            bar.update(job, completed=done, total=total, visible=True, **({"description": phase} if phase else {}))

        try:
            metrics = evaluate(
                config,
                output,
                backend_for,
                options,
                on_progress=show,
                on_message=lambda text: bar.console.print(text, highlight=False),
            )
        except (LayoutError, SchemaError, BackendError, ValueError) as error:
            fail(str(error))
    headline = {k: metrics.get(k) for k in config.metrics}
    Console().print_json(json.dumps({"task": config.task, **headline, "cost": metrics["cost"]}))
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


SUITE_EPILOG = (
    "Examples:\n\n"
    "  axr eval suite                                  (every caption task whose data is here)\n\n"
    "  axr eval suite ped2 shtech ped2@~/captions/ped2-llava --out suite.json   (another captioner's ped2)\n\n"
    "  axr eval suite ped2 shtech --variant axr --variant 'no-novelty:pipeline.trigger.novelty=false'"
)


@app.command("suite", epilog=SUITE_EPILOG)
def suite(
    sets: list[str] = typer.Argument(
        None, help="TASK, or TASK@FOLDER (the task's rule book and settings over a folder in its layout)"
    ),
    variants: list[str] = typer.Option(
        None, "--variant", help="LABEL[:key=value,...] with task keys; repeat to compare (default: axr)"
    ),
    assignments: list[str] = typer.Option(
        None, "--set", help="a task field for every set and variant: dotted.key=value (e.g. pipeline.rules=FILE)"
    ),
    out: Path = typer.Option(None, help="also write the rows as JSON"),
):
    """The caption detector on several caption sets beside AnomalyRuler-base (computed by AXR on the same
    held-out videos) and published figures: pooled / per-video-mean frame AUC (%), no model."""
    from axr.eval.datasets import LayoutError
    from axr.eval.suite import BASELINE, CaptionSet, Variant, caption_tasks, mean_row, measure_set
    from axr.eval.tasks import task_overrides
    from axr.reasoning.embedding import Embedder
    from axr.reasoning.schema import SchemaError

    try:
        common = task_overrides(assignments)
        chosen = [CaptionSet.parse(text) for text in sets or caption_tasks()]
        compared = [Variant.parse(text) for text in variants or ["axr"]]
    except SchemaError as error:
        fail(str(error))
    embedder = Embedder()
    rows = []
    with progress_bar() as bar:
        job = bar.add_task("caption sets", total=len(chosen))
        for caption_set in chosen:
            bar.update(job, description=caption_set.label)
            try:
                rows.append(measure_set(caption_set, compared, embedder, common))
            except (LayoutError, SchemaError, ValueError) as error:
                fail(f"{caption_set.label}: {error}")
            bar.advance(job)
    columns = [BASELINE, *(v.label for v in compared)]
    rows.append(mean_row(rows, columns))
    title = "pooled / per-video-mean frame AUC (%), held-out videos"
    table = Table("set", "videos", *columns, "published", title=title)
    for row in rows:
        cells = [f"{row[c]['pooled']:.2f} / {row[c]['per_video'] or float('nan'):.2f}" for c in columns]
        published = ", ".join(f"{k} {v:.2f}" for k, v in row.get("published", {}).items())
        table.add_row(row["set"], str(row["evaluated_videos"]), *cells, published or "-")
    wide.print(table)
    if out:
        out.write_text(json.dumps(rows, indent=2))
        err.print(f"wrote {out}", highlight=False)


@app.command(
    "validate",
    epilog="Examples:\n\n  axr eval validate              (every shipped task)\n\n  axr eval validate my_task.yaml",
)
def validate(tasks: list[str] = typer.Argument(None, help="task names or YAML paths (default: every shipped task)")):
    """Load and check task files without a model: adapters, pipeline, metrics, rule books, judges."""
    from axr.eval.pipelines import validate_task
    from axr.eval.tasks import all_tasks, load_task
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
    from axr.eval.judge import judge_run, parse_judge, task_judges

    if not (run_dir / "predictions.jsonl").is_file():
        fail(f"{run_dir}: no predictions.jsonl (run `axr eval run` first)")
    try:
        specs = [parse_judge(text) for text in judges or []] or task_judges(run_dir)
    except ValueError as error:
        fail(str(error))
    if not specs:
        fail(f"{run_dir}: the task names no judge; pass --judge BACKEND:MODEL[@BASE_URL]")
    embedder = None
    if text_metrics:
        from axr.reasoning.embedding import Embedder

        embedder = Embedder()
    backends = [
        (
            f"{spec['backend']}:{Path(spec['model']).name}",
            make_backend(spec["backend"], spec["model"], spec.get("base_url"), text_only=True),
        )
        for spec in specs
    ]
    with progress_bar() as bar:
        job = bar.add_task("judging", total=None)
        result = judge_run(run_dir, backends, embedder, on_judged=lambda n: bar.advance(job, n))
    for _, backend in backends:
        backend.close()
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
    if result["request_errors"]:
        err.print(
            f"{result['request_errors']} judge requests got no answer (not recorded as judgements): run the same "
            "command again to retry them",
            highlight=False,
        )


DIMENSION_COLUMNS = ("what", "why", "how")


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
