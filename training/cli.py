"""`axr train ...`: datasets, synthetic anomalies, SFT, GRPO, merged export. Heavy imports stay inside commands."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from axr.reasoning.console import err, fail, make_backend

app = typer.Typer(
    help="Fine-tune compact reasoners: data, synthetic anomalies, SFT, GRPO, export.", no_args_is_help=True
)


@app.command(
    "data",
    epilog="Examples:\n\n"
    "  axr train data textile --kind sft --out data/textile-sft --limit 200\n\n"
    "  axr train data mvtec_ad --data-dir ~/data/mvtec --split train --kind grpo --out data/mvtec-grpo\n\n"
    "  axr train data jsonl --data-dir synth/ --split train --kind sft --think --out data/synth-sft\n\n"
    "  axr train data textile --kind sft --rationale teacher --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct "
    "--base-url http://127.0.0.1:8000/v1 --out data/textile-teacher\n\n"
    "  axr train data shtech --kind scorer --negatives 700 --out data/shtech-scorer   (a one-token scorer's rows, "
    "no anomaly label: writes sft/, grpo/ and check/; --rules-first for a careful captioner)\n\n"
    "  axr train data shtech --kind scorer --model qwen2.5-coder-1.5b --base-url http://127.0.0.1:8001/v1 "
    "--out data/shtech-scorer-teacher   (a served teacher rewrites the pseudo-anomalies)",
)
def data(
    task: str = typer.Argument(..., help="an eval task name or YAML path (its adapter, split and prompt settings)"),
    out: Path = typer.Option(..., help="the dataset folder to write (datasets.save_to_disk, plus README.md)"),
    kind: str = typer.Option(
        "sft",
        help="sft (prompt + Verdict completion), grpo (prompt + ground-truth columns), or scorer (caption tasks: "
        "the scoring stage's yes/no rows from normal references and pseudo-anomalies, no anomaly label)",
    ),
    split: str = typer.Option(None, help="the dataset split to read (default: the task's)"),
    data_dir: str = typer.Option(None, help="override dataset.data_dir: a folder or data:SET/PATH"),
    rationale: str = typer.Option("gt", help="gt | template | teacher: where SFT rationales come from"),
    think: bool = typer.Option(False, help="SFT completions as <think>...</think><answer>{json}</answer>"),
    references: int = typer.Option(None, help="normal reference images per prompt (default: the task's)"),
    limit: int = typer.Option(None, help="at most this many samples (a fixed, mixed subset)"),
    backend: str = typer.Option("openai", help="teacher backend"),
    model: str = typer.Option(None, help="teacher model"),
    base_url: str = typer.Option(None, help="teacher server URL"),
    negatives: int = typer.Option(None, help="scorer: at most this many normal captions (a seeded sample)"),
    seed: int = typer.Option(0, help="scorer: the sample of captions and the rule written into each"),
    list_share: float = typer.Option(
        0.5, help="scorer: how often a thing joins the caption's own list of what is in view (else a sentence)"
    ),
    rules_first: bool = typer.Option(
        False,
        help="scorer: leave out normal captions that name an anomaly rule's action, and give every action or thing "
        "the rules name the same share of pseudo-anomalies (for captioners that seldom misname a normal frame)",
    ),
    encoding: str = typer.Option(None, help="override dataset.encoding: caption files' encoding (e.g. latin-1)"),
):
    """Build an SFT, GRPO or scorer dataset from an eval task's samples, with a data card."""
    from axr.eval.datasets import LayoutError
    from axr.eval.tasks import load_task, task_overrides
    from axr.reasoning.schema import SchemaError
    from axr.training.data import build_rows, save_dataset

    overrides = {
        "dataset.data_dir": data_dir,
        "dataset.split": split,
        "pipeline.references.count": references,
        "dataset.encoding": encoding,
    }
    try:
        config = load_task(task, task_overrides(None, **overrides))
    except SchemaError as error:
        fail(str(error))
    if kind == "scorer":
        teacher = make_backend(backend, model, base_url, text_only=True) if model else None
        _scorer_data(config, out, negatives, seed, teacher, list_share, rules_first)
        return
    teacher = None
    if rationale == "teacher":
        if not model:
            fail("--rationale teacher needs --model (and --base-url for the openai backend)")
        teacher = make_backend(backend, model, base_url)
    try:
        rows, stats = build_rows(config, kind, rationale, think, teacher, limit)
        captions = config.mode == "captions"
        card = {
            "source task": config.task,
            "adapter": config.dataset.adapter,
            "split": config.dataset.split,
            "kind": kind,
            "rationale": rationale,
            "think": think,
            "prompt": "deduce_system + deduce_user (the caption re-check's)" if captions else "direct_system",
            **({} if captions else {"references per prompt": config.pipeline.references.count}),
            "rows": len(rows),
            **stats,
        }
        save_dataset(rows, out, card)
    except (LayoutError, SchemaError, ValueError) as error:
        fail(str(error))
    skipped = stats.pop("skipped", {})
    for sample_id, error in skipped.items():
        err.print(f"skipped {sample_id}: {error}", highlight=False, soft_wrap=True)
    err.print(f"wrote {len(rows)} {kind} rows to {out} ({json.dumps(stats)})", highlight=False)


def _scorer_data(
    config, out: Path, negatives: int | None, seed: int, teacher, list_share: float, rules_first: bool
) -> None:
    from axr.eval.datasets import LayoutError
    from axr.reasoning.console import progress_bar
    from axr.reasoning.schema import SchemaError
    from axr.training.data import save_dataset
    from axr.training.scorer_data import card, scorer_rows

    try:
        with progress_bar() as bar:
            job = bar.add_task("teacher rewrites" if teacher else "pseudo-anomalies", total=None)
            parts, stats = scorer_rows(
                config,
                negatives,
                seed=seed,
                teacher=teacher,
                on_progress=lambda done, total: bar.update(job, completed=done, total=total),
                list_share=list_share,
                rules_first=rules_first,
            )
        facts = card(config, stats, seed, teacher.model if teacher else None)
        for name, rows in parts.items():
            save_dataset(rows, out / name, {"part": name, **facts})
    except (LayoutError, SchemaError, ValueError) as error:
        fail(str(error))
    err.print(f"wrote {', '.join(str(out / name) for name in parts)} ({json.dumps(stats)})", highlight=False)


@app.command(
    "synth",
    epilog="Examples:\n\n  axr train synth good_parts/ --out synth/ --per-image 2 --subject 'metal bracket'\n\n"
    "  then: axr eval run jsonl --data-dir synth/ ...   or   axr train data jsonl --data-dir synth/ --split train",
)
def synth(
    normal_dir: Path = typer.Argument(..., help="a folder of normal images"),
    out: Path = typer.Option(..., help="output folder: samples.jsonl, images/, masks/"),
    per_image: int = typer.Option(1, help="defective copies per normal image"),
    seed: int = typer.Option(0, help="the same seed gives the same defects"),
    kinds: str = typer.Option("cut_paste,scratch,stain,noise_blob", help="defect kinds, in turn"),
    subject: str = typer.Option("surface", help="what the images show (used in the rationale texts)"),
    train_share: float = typer.Option(0.5, help="share of the images (by name) marked split=train"),
):
    """Synthetic anomalies (masks, boxes, what/why/how) on normal images, in the generic JSONL layout."""
    from axr.reasoning.media import MediaError
    from axr.training.synth import KINDS, synthesize_set

    chosen = tuple(k.strip() for k in kinds.split(",") if k.strip())
    unknown = [k for k in chosen if k not in KINDS]
    if unknown or not chosen:
        fail(f"unknown defect kind(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(KINDS)}")
    try:
        path = synthesize_set(normal_dir, out, per_image, seed, chosen, subject, train_share)
    except (MediaError, ValueError) as error:
        fail(str(error))
    err.print(f"wrote {path}", highlight=False)


RESUME_HELP = "continue from the latest checkpoint in output_dir"


SFT_EPILOG = (
    "Examples:\n\n  axr train sft --config qwen2.5-vl-3b-sft-lora --dataset data/textile-sft\n\n"
    "  accelerate launch --config_file $(axr train configs --path ddp) -m axr.training.sft --config my_recipe.yaml"
)
GRPO_EPILOG = (
    "Examples:\n\n  axr train grpo --config qwen2.5-vl-3b-grpo-lora --dataset data/mvtec-grpo\n\n"
    "  accelerate launch --config_file $(axr train configs --path zero2) -m axr.training.grpo --config my_recipe.yaml"
)
EXPORT_EPILOG = (
    "Examples:\n\n  axr train export runs/grpo-lora --out models/axr-3b\n\n"
    "  then: axr eval run textile --backend hf --model models/axr-3b   or   vllm serve models/axr-3b"
)


@app.command("sft", epilog=SFT_EPILOG)
def sft(
    config: str = typer.Option(..., help="a recipe name (see `axr train configs`) or a YAML path"),
    dataset: str = typer.Option(None, help="override the recipe's dataset"),
    output_dir: str = typer.Option(None, help="override the recipe's output_dir"),
    model: str = typer.Option(None, help="override the recipe's model"),
    resume: bool = typer.Option(False, help=RESUME_HELP),
):
    """Supervised fine-tuning with TRL's SFTTrainer (completion-only loss, LoRA or full)."""
    from axr.training import sft as script

    script.main(Namespace(config=config, dataset=dataset, output_dir=output_dir, model=model, resume=resume))


@app.command("grpo", epilog=GRPO_EPILOG)
def grpo(
    config: str = typer.Option(..., help="a recipe name (see `axr train configs`) or a YAML path"),
    dataset: str = typer.Option(None, help="override the recipe's dataset"),
    output_dir: str = typer.Option(None, help="override the recipe's output_dir"),
    model: str = typer.Option(None, help="override the recipe's model (e.g. your SFT output)"),
    resume: bool = typer.Option(False, help=RESUME_HELP),
):
    """GRPO with TRL's GRPOTrainer and AXR's rewards (vLLM generation when the recipe asks and it is installed)."""
    from axr.training import grpo as script

    script.main(Namespace(config=config, dataset=dataset, output_dir=output_dir, model=model, resume=resume))


@app.command(
    "bench",
    epilog="Examples:\n\n  axr train bench                      (tiny model, CPU, about a minute)\n\n"
    "  axr train bench --model path/to/qwen2.5-vl-3b --grpo-steps 20   (on a GPU machine)",
)
def bench(
    model: str = typer.Option("tiny-qwen2.5-vl", help="the base model (an offline alias or a local folder)"),
    sft_steps: int = typer.Option(200, help="SFT warm-up steps (teaches the Verdict format)"),
    grpo_steps: int = typer.Option(30, help="GRPO steps"),
    generations: int = typer.Option(8, help="completions per prompt"),
    out: Path = typer.Option(None, help="also write the result as JSON"),
):
    """SFT then GRPO on the textile images: the reward curve, completions/s and peak memory."""
    import tempfile

    import numpy as np

    from axr.training.bench import bench_grpo

    with tempfile.TemporaryDirectory(prefix="axr-bench-grpo-") as workdir:
        result = bench_grpo(Path(workdir), model, sft_steps, grpo_steps, generations)
    curve = result["grpo"]["curve"]
    table = Table("step", "reward", "format", "verdict", "completion tokens", title="GRPO reward curve")
    for row in curve:
        table.add_row(
            str(row["step"]),
            f"{row['reward']:.3f}",
            f"{row['format']:.3f}",
            f"{row['verdict']:.3f}",
            f"{row['completion_length'] or 0:.0f}",
        )
    Console().print(table)
    head, tail = curve[:5], curve[-10:]
    sft = result["sft"]
    Console().print(
        f"{result['model']}: SFT {sft['steps']} steps, loss {sft['first_loss']:.3f} -> {sft['last_loss']:.3f} "
        f"({sft['seconds']} s); GRPO {result['grpo']['steps']} steps x {generations} completions, "
        f"{result['grpo']['completions_per_s']:.1f} completions/s; verdict reward, mean of the first 5 steps "
        f"{np.mean([r['verdict'] for r in head]):.3f} -> last 10 {np.mean([r['verdict'] for r in tail]):.3f}; "
        f"peak memory {result['peak_memory_gb']} GB"
    )
    if out:
        out.write_text(json.dumps(result, indent=2))


@app.command(
    "configs",
    epilog="Examples:\n\n  axr train configs\n\n"
    "  accelerate launch --config_file $(axr train configs --path zero3) -m axr.training.grpo "
    "--config qwen2.5-vl-7b-grpo-full",
)
def configs(path: str = typer.Option(None, help="print only the file of this recipe or accelerate config")):
    """The recipes and accelerate configs shipped with AXR, by name, with the files they live in."""
    from axr.training.recipe import ACCELERATE_DIR, RECIPES_DIR

    shipped = {"recipe": sorted(RECIPES_DIR.glob("*.yaml")), "accelerate": sorted(ACCELERATE_DIR.glob("*.yaml"))}
    if path:
        found = [p for files in shipped.values() for p in files if p.stem == path]
        if not found:
            fail(f"no shipped recipe or accelerate config named {path!r}; see `axr train configs`")
        print(found[0])
        return
    table = Table("kind", "name", "file", title="copy one and edit it, or pass its name to --config")
    for kind, files in shipped.items():
        for file in files:
            table.add_row(kind, file.stem, str(file))
    Console(width=max(Console().width, 140)).print(table)


@app.command(
    "probe",
    epilog="Examples:\n\n  axr train probe data/shtech-scorer/sft --out runs/shtech-probe\n\n"
    "  then: axr train check runs/shtech-probe --backend probe --dataset data/shtech-scorer/check\n\n"
    "  or:   axr eval run ped2 --set pipeline.scoring.policy=all --set pipeline.recheck.backend=probe "
    "--set pipeline.recheck.model=runs/shtech-probe",
)
def probe(
    datasets: list[Path] = typer.Argument(..., help="scorer dataset folders (axr train data TASK --kind scorer)"),
    out: Path = typer.Option(..., help="the folder for probe.json"),
    c: float = typer.Option(1.0, "--c", help="inverse regularisation strength of the logistic regression"),
):
    """A linear-probe baseline for a one-token scorer: logistic regression on MiniLM caption embeddings,
    served through the scoring stage by the `probe` backend."""
    from axr.training.probe import fit_probe

    try:
        facts = fit_probe(datasets, out, c)
    except (OSError, ValueError) as error:
        fail(str(error))
    err.print(f"wrote {out} ({json.dumps(facts)})", highlight=False)


@app.command(
    "check",
    epilog="Examples:\n\n  axr train check runs/smollm2-scorer-sft --dataset data/shtech-scorer/check\n\n"
    "  axr train check runs/shtech-probe --backend probe --dataset data/shtech-scorer/check\n\n"
    "  axr train check scorer --backend openai --base-url http://127.0.0.1:8002/v1 --dataset data/ped2-scorer/check",
)
def check(
    model: str = typer.Argument(..., help="a trained scorer: a model folder, a probe folder, or a served name"),
    dataset: Path = typer.Option(..., help="held-back scorer rows (the check/ part of axr train data --kind scorer)"),
    backend: str = typer.Option("hf", help="hf | vllm | openai | probe"),
    base_url: str = typer.Option(None, help="server URL for the openai backend"),
    out: Path = typer.Option(None, help="also write the figures as JSON"),
):
    """A one-token scorer's agreement with held-back pseudo-labelled rows: agreement, AUC, rows/s."""
    from axr.reasoning.console import progress_bar
    from axr.training.agreement import agreement

    scorer = make_backend(backend, model, base_url, text_only=True)
    try:
        with progress_bar() as bar:
            job = bar.add_task("scoring held-back rows", total=None)
            figures = agreement(
                scorer, dataset, on_progress=lambda done, total: bar.update(job, completed=done, total=total)
            )
    except (OSError, ValueError) as error:
        fail(str(error))
    Console().print(" ".join(f"{k} {v}" for k, v in figures.items()), highlight=False)
    if out:
        out.write_text(json.dumps({"model": model, "dataset": str(dataset), **figures}, indent=2))


@app.command("export", epilog=EXPORT_EPILOG)
def export(
    trained: Path = typer.Argument(..., help="a training output folder (LoRA adapter or full model)"),
    out: Path = typer.Option(..., help="the folder for the merged model"),
    base_model: str = typer.Option(None, help="the base model of a LoRA adapter (default: as recorded)"),
):
    """Merge a LoRA adapter into its base: a plain model folder for the `hf` backend and `vllm serve`."""
    from axr.training.trainers import export_merged

    if not trained.is_dir():
        fail(f"{trained}: not a folder")
    try:
        export_merged(trained, out, base_model)
    except (OSError, ValueError) as error:
        fail(f"{trained}: {str(error).splitlines()[0]}")
    err.print(f"wrote {out}", highlight=False)
