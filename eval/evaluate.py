"""One entry for every task and engine: `evaluate(task, output, ...)` runs a task of any mode through the one
runner (`axr.eval.runner`), in this process or on a Ray cluster (`axr.eval.ray_engine`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from axr.eval.pipelines import pipeline_for
from axr.eval.runner import LazyBackend, RunOptions, run
from axr.eval.task_config import TaskConfig
from axr.reasoning.backends.base import Backend

ENGINES = ("local", "ray")


def evaluate(
    task: TaskConfig,
    output: Path,
    backend_for: Callable[..., Backend],
    options: RunOptions | None = None,
    on_progress: Callable[..., None] | None = None,
    on_message: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run a task on the options' engine; `backend_for(settings, text_only=False)` makes the backend its
    settings name (only when one is needed); `on_progress(done, total)` counts samples (a mode's named phase,
    such as a caption task's induction or re-check, adds a third argument, the phase)."""
    options = options or RunOptions()
    if options.engine not in ENGINES:
        raise ValueError(f"--engine {options.engine!r}: choose one of {', '.join(ENGINES)}")
    if options.engine == "local" and (options.workers != 1 or options.ray_address):
        raise ValueError("--workers and --ray-address are Ray's: add --engine ray (or leave them out)")
    if options.engine == "ray":
        from axr.eval.ray_engine import evaluate_on_ray

        return evaluate_on_ray(task, output, options, on_progress, on_message)
    pipeline = pipeline_for(task)
    settings = pipeline.endpoint
    text_only = pipeline.text_only and settings.backend == "openai"
    backend = LazyBackend(lambda: backend_for(settings, text_only=text_only))
    try:
        return run(task, output, backend, options, on_progress=on_progress, on_message=on_message)
    finally:
        backend.close()
