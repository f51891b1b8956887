"""`python -m training.grpo --config RECIPE [--resume]`: the entry point for `accelerate launch` on many GPUs."""

from training.cli import app

if __name__ == "__main__":
    app(["grpo", *__import__("sys").argv[1:]])
