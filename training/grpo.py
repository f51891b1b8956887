"""`python -m axr.training.grpo --config RECIPE [--resume]`: the entry point for `accelerate launch` on many GPUs."""

from axr.training.cli import app

if __name__ == "__main__":
    app(["grpo", *__import__("sys").argv[1:]])
