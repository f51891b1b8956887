"""Pipeline modes: how a task turns samples into prediction records, and which metrics it reports.

Each mode is one class keeping the contract of `axr.eval.pipelines.base.Pipeline`, named by the task's
`pipeline.mode`; the runner (`axr.eval.runner`) does the rest the same way for every mode.
"""

from __future__ import annotations

from axr.eval.pipelines.base import Pipeline
from axr.eval.pipelines.captions import CaptionPipeline
from axr.eval.pipelines.direct import DirectPipeline
from axr.eval.pipelines.mcq import MCQPipeline
from axr.eval.pipelines.mcq_from_verdict import MCQFromVerdictPipeline
from axr.eval.task_config import TaskConfig
from axr.eval.tasks import task_file_path
from axr.reasoning.resources import DataError, is_data_ref
from axr.reasoning.schema import SchemaError

PIPELINES: dict[str, type[Pipeline]] = {
    "direct": DirectPipeline,
    "mcq": MCQPipeline,
    "mcq_from_verdict": MCQFromVerdictPipeline,
    "captions": CaptionPipeline,
}


def pipeline_for(task: TaskConfig) -> Pipeline:
    return PIPELINES[task.mode](task)


def validate_task(task: TaskConfig) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a loaded task, checked without a model. A dataset folder that is absent is only
    a warning: most datasets are not shipped and a user points --data-dir at them."""
    from axr.reasoning.backends import BACKENDS

    pipeline = pipeline_for(task)
    errors = pipeline.validate()
    if pipeline.endpoint.backend not in BACKENDS:
        errors.append(f"pipeline backend {pipeline.endpoint.backend!r}: choose one of {', '.join(BACKENDS)}")
    unknown = [m for m in task.metrics if m not in pipeline.METRICS]
    if unknown:
        errors.append(f"metrics: unknown {', '.join(unknown)}; known: {', '.join(sorted(pipeline.METRICS))}")
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
