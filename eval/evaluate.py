"""One entry for every task and engine: `evaluate(task, output, ...)` runs a caption task or a sample task,
in this process (`axr.eval.runner`) or on a Ray cluster (`axr.eval.ray_engine`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from axr.eval.pipelines import captions, endpoint
from axr.eval.runner import RunOptions, run_task
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
    """Run a task of any mode on the options' engine; `backend_for(settings, text_only=False)` makes the
    backend its settings name (only when one is needed); `on_progress(done, total)` counts samples (caption
    tasks add a third argument, the phase: induction answers, then re-checked frames)."""
    options = options or RunOptions()
    if options.engine not in ENGINES:
        raise ValueError(f"--engine {options.engine!r}: choose one of {', '.join(ENGINES)}")
    if options.engine == "ray":
        from axr.eval.ray_engine import evaluate_on_ray

        return evaluate_on_ray(task, output, options, on_progress, on_message)
    if task.mode == "captions":  # captions are text: an openai server is sent no image parts
        text_backend = lambda settings: backend_for(settings, text_only=settings.backend == "openai")  # noqa: E731
        return captions.run(task, output, text_backend, on_message, on_progress)
    with backend_for(endpoint(task)) as backend:
        return run_task(task, output, backend, options, on_progress, on_message)
