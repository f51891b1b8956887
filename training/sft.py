"""`python -m axr.training.sft --config RECIPE [--resume]`: the entry point for `accelerate launch` on many GPUs,
in the shape of TRL's scripts (`main(args)`); `axr train sft` calls the same `main`."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from axr.reasoning.console import err, fail


def parse_args(argv: list[str] | None = None, kind: str = "sft") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m axr.training.{kind}", description=f"{kind} of a recipe")
    parser.add_argument("--config", required=True, help="a recipe name (see `axr train configs`) or a YAML path")
    parser.add_argument("--dataset", help="override the recipe's dataset")
    parser.add_argument("--output-dir", help="override the recipe's output_dir")
    parser.add_argument("--model", help="override the recipe's model")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    return parser.parse_args(argv)


def main(args: argparse.Namespace, kind: str = "sft") -> dict:
    """Train the recipe (of this kind: sft or grpo), print its curve, and return the trainer's summary."""
    from axr.reasoning.schema import SchemaError
    from axr.training.recipe import load_recipe
    from axr.training.trainers import run_grpo, run_sft

    overrides = {"dataset": args.dataset, "output_dir": args.output_dir, "model": args.model}
    try:
        recipe = load_recipe(args.config, **overrides)
        if recipe.kind != kind:
            fail(f"{recipe.path}: a {recipe.kind} recipe; run it with `axr train {recipe.kind}`")
        summary = (run_sft if kind == "sft" else run_grpo)(recipe, resume=args.resume)
    except SchemaError as error:
        fail(str(error))
    print_curve(summary["log_history"], kind)
    merged = f"; merged model: {summary['merged']}" if "merged" in summary else ""
    err.print(f"saved to {recipe.output_dir}{merged}")
    return summary


def print_curve(history: list[dict], kind: str) -> None:
    from axr.training.trainers import curve_table

    columns, rows = curve_table(history, kind)
    table = Table(*columns, title=f"{kind} curve")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def script(kind: str = "sft") -> None:
    """`python -m axr.training.KIND` (what `accelerate launch` runs): a refused recipe ends in its one line and
    exit status 2, as `axr train` does, not in a traceback of the command-line library's exit."""
    import sys

    import typer

    try:
        main(parse_args(kind=kind), kind)
    except typer.Exit as stop:
        sys.exit(stop.exit_code)


if __name__ == "__main__":
    script("sft")
