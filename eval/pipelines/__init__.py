"""Pipeline modes: how a task turns samples into prediction records, and which metrics it reports.

Each mode is one module, named by the task's `pipeline.mode`:
    direct, mcq, mcq_from_verdict  predict(ready, backend, book, task, state) per chunk of samples (the
                                   runner batches, journals and resumes), metrics(records, task, book)
    captions                       run(task, output, backend_for, ...) over whole caption videos
Every mode has METRICS (the names a task may list) and validate(task) (its own checks, without a model),
and writes records of the one shape in `axr.eval.records`.
"""

from __future__ import annotations

from types import ModuleType

from axr.eval.pipelines import captions, direct, mcq, mcq_from_verdict
from axr.eval.task_config import TaskConfig
from axr.eval.tasks import task_file_path
from axr.reasoning.resources import DataError, is_data_ref
from axr.reasoning.schema import SchemaError

PIPELINES: dict[str, ModuleType] = {
    "direct": direct,
    "mcq": mcq,
    "mcq_from_verdict": mcq_from_verdict,
    "captions": captions,
}


def endpoint(task: TaskConfig):
    """The part of the task that names its model: the pipeline, or a caption task's re-check settings."""
    return task.pipeline.recheck if task.mode == "captions" else task.pipeline


def validate_task(task: TaskConfig) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a loaded task, checked without a model. A dataset folder that is absent is only
    a warning: most datasets are not shipped and a user points --data-dir at them."""
    from axr.reasoning.backends import BACKENDS

    mode = PIPELINES[task.mode]
    errors = list(mode.validate(task))
    if endpoint(task).backend not in BACKENDS:
        errors.append(f"pipeline backend {endpoint(task).backend!r}: choose one of {', '.join(BACKENDS)}")
    unknown = [m for m in task.metrics if m not in mode.METRICS]
    if unknown:
        errors.append(f"metrics: unknown {', '.join(unknown)}; known: {', '.join(sorted(mode.METRICS))}")
    errors += _check_rules(task.pipeline.rules)
    warnings = []
    try:
        data_dir = task_file_path(task.dataset.data_dir)
    except DataError as error:
        warnings.append(f"dataset.data_dir {error}")
    else:
        if data_dir is not None and not data_dir.exists():
            warnings.append(f"dataset.data_dir {data_dir} does not exist here (pass --data-dir)")
    return errors, warnings


def _check_rules(rules: str | None) -> list[str]:
    if not rules or rules == "induce":
        return []
    from axr.reasoning.rulebook_import import load_rules

    try:
        load_rules(task_file_path(rules))
    except DataError as error:  # a set not fetched yet: `axr data fetch` fixes it, the task itself is fine
        return [] if is_data_ref(rules) else [f"pipeline.rules: {error}"]
    except (SchemaError, OSError) as error:
        return [f"pipeline.rules: {error}"]
    return []
