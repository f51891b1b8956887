"""The contract every pipeline mode keeps with the runner (as lm-eval's Task owns its requests and results).

The runner (`axr.eval.runner`) owns everything a mode shares: choosing the samples (`--limit`, `--shard`),
the journal, resume, `--retry-errors`, progress, the engine (this process or Ray) and the metrics file. A
mode says only what is its own:

    samples()                      the units the runner selects, journals and resumes (a caption task's
                                   units are its held-out videos)
    setup(backend, ...)            once per run, before any sample (the caption mode fits its detector on
                                   the reference videos here, inducing a rule book first when asked)
    predict(chunk, backend)        records for a chunk of samples (a caption video's records are its frames)
    finalize(records, ...)         once per run over every chosen record (the caption mode's pooled re-check
                                   and merge); returns the records to keep, the runner journals changes
    metrics(records)               the mode's figures on the answered records (`cost` entries are merged
                                   into the run's cost)

`backend` is a callable that makes the mode's backend on first use (and returns the same one after), so a
run that needs no model (a caption task without a re-check) never starts one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from axr.eval.records import PredictionRecord
from axr.eval.samples import MediaLoader, load_rulebook, load_task_samples
from axr.eval.task_config import TaskConfig
from axr.reasoning.backends.base import Backend
from axr.reasoning.media import MediaError
from axr.reasoning.schema import Sample

BackendMaker = Callable[[], Backend]


class Pipeline:
    METRICS: frozenset[str] = frozenset()
    model_per_sample = True  # predict() asks a model: engines spread it over model replicas
    text_only = False  # an openai server is sent no image parts

    def __init__(self, task: TaskConfig):
        self.task = task

    @property
    def endpoint(self):
        """The part of the task that names its model."""
        return self.task.pipeline

    def validate(self) -> list[str]:
        """The mode's own checks of the task, without a model."""
        return []

    def samples(self) -> list[Sample]:
        raise NotImplementedError

    def setup(self, backend: BackendMaker, on_message: Callable[[str], None], on_phase: Callable) -> None:
        """Once per run before any sample; `on_phase(name)` gives a progress callback for a named phase."""

    def predict(self, chunk: list[Sample], backend: BackendMaker) -> list[PredictionRecord]:
        raise NotImplementedError

    def finalize(
        self,
        records: list[PredictionRecord],
        output: Path,
        backend: BackendMaker,
        on_message: Callable[[str], None],
        on_phase: Callable,
    ) -> list[PredictionRecord]:
        """Once per run over every chosen record; what it writes besides them goes in `output`."""
        return records

    def metrics(self, records: list[PredictionRecord]) -> dict[str, Any]:
        raise NotImplementedError


class SamplePipeline(Pipeline):
    """The modes that ask a model about each sample's media (direct, mcq, mcq_from_verdict): media loaded
    here (an unreadable sample becomes its error record), the rest asked in one batched call by `ask`."""

    def __init__(self, task: TaskConfig):
        super().__init__(task)
        self.book = None
        self.loader = MediaLoader(task)

    def setup(self, backend: BackendMaker, on_message: Callable[[str], None], on_phase: Callable) -> None:
        self.book = load_rulebook(self.task)

    def validate(self) -> list[str]:
        from axr.eval.datasets import adapter_names

        if self.task.dataset.adapter not in adapter_names():
            return [f"dataset.adapter {self.task.dataset.adapter!r}: choose one of {', '.join(adapter_names())}"]
        return []

    def samples(self) -> list[Sample]:
        return load_task_samples(self.task)

    def predict(self, chunk: list[Sample], backend: BackendMaker) -> list[PredictionRecord]:
        ready, records = [], {}
        for sample in chunk:
            try:
                ready.append((sample, self.loader.query(sample), self.loader.references(sample)))
            except (MediaError, OSError) as error:
                records[sample.sample_id] = PredictionRecord.unreadable(sample, str(error))
        if ready:
            records.update((r.sample_id, r) for r in self.ask(ready, backend()))
        return [records[s.sample_id] for s in chunk]

    def ask(self, ready: list[tuple[Sample, list, list]], backend: Backend) -> list[PredictionRecord]:
        """Records for (sample, query images, references) triples, from one batched call."""
        raise NotImplementedError
