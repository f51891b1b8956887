"""`python -m axr.training.sft --config RECIPE [--resume]`: the entry point for `accelerate launch` on many GPUs."""

from axr.training.cli import app

if __name__ == "__main__":
    app(["sft", *__import__("sys").argv[1:]])
