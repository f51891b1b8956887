"""`python -m axr.training.grpo --config RECIPE [--resume]`: the entry point for `accelerate launch` on many
GPUs (a script's `main(args)`, as TRL's scripts have; `axr train grpo` runs the same `train`)."""

from __future__ import annotations

import argparse

from axr.training import sft


def main(args: argparse.Namespace) -> dict:
    return sft.main(args, kind="grpo")


if __name__ == "__main__":
    sft.script("grpo")
