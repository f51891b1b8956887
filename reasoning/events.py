"""Events: the runs of frames a caption detector flags in one video, each explained once by the model.

After the threshold, a video's flagged frames form runs; runs closer than `merge_gap_seconds` are one event.
Each event gets one generated Verdict (what, why, the rules broken, severity) from the re-check model, read
from a few of the event's distinct captions spread over it, with the same rule-book system prompt as the
re-check (so a server's prefix cache serves it). Cost grows with events, not frames. Answers are journaled
as they arrive, so an interrupted run asks only the events it has no answer for; a request that got no
answer is not journaled and is asked again by the next run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from axr.reasoning.deduction import recheck
from axr.reasoning.journal import Journal
from axr.reasoning.prompting import render
from axr.reasoning.schema import RuleBook, Verdict
from axr.reasoning.settings import DEFAULT_LINE_SECONDS
from axr.reasoning.smoothing import event_spans

CHUNK = 16  # events per request batch (each answer is journaled as it arrives)


@dataclass
class Event:
    """Frames `start`..`end` (inclusive) of `video`, flagged; `peak` is its highest smoothed score."""

    video: str
    start: int
    end: int
    peak: float
    line_seconds: float = DEFAULT_LINE_SECONDS
    verdict: Verdict | None = None

    @property
    def event_id(self) -> str:
        return f"{self.video}/{self.start:06d}-{self.end:06d}"

    @property
    def seconds(self) -> tuple[float, float]:
        """Where the event lies in its video, in seconds: from its first line's start to its last line's end."""
        return round(self.start * self.line_seconds, 2), round((self.end + 1) * self.line_seconds, 2)

    def record(self) -> dict:
        start, end = self.seconds
        verdict = self.verdict.model_dump(mode="json", exclude_none=True) if self.verdict else None
        return {
            "event_id": self.event_id,
            "video": self.video,
            "start_frame": self.start,
            "end_frame": self.end,
            "start_seconds": start,
            "end_seconds": end,
            "peak_score": round(self.peak, 4),
            "verdict": verdict,
        }


def find_events(
    scores: dict[str, np.ndarray], threshold: float, line_seconds: float | None, merge_gap_seconds: float
) -> list[Event]:
    """Each video's runs of frames above `threshold`, runs separated by at most `merge_gap_seconds` joined."""
    line_seconds = line_seconds or DEFAULT_LINE_SECONDS
    gap = int(merge_gap_seconds / line_seconds)  # lines of normal frames a single event may span
    events = []
    for video, values in scores.items():
        values = np.asarray(values)
        for start, end in event_spans(values > threshold, max_gap=gap):
            events.append(Event(video, start, end, float(values[start : end + 1].max()), line_seconds))
    return events


def event_observation(event: Event, captions: list[str], max_captions: int) -> str:
    """What the model reads for an event: its span, then up to `max_captions` of its distinct captions spread
    evenly over it, each with its time."""
    first_seen: dict[str, int] = {}
    for i in range(event.start, event.end + 1):
        first_seen.setdefault(" ".join(captions[i].split()), i)
    distinct = list(first_seen.items())
    if len(distinct) > max_captions:
        picks = np.linspace(0, len(distinct) - 1, max_captions).round().astype(int)
        distinct = [distinct[p] for p in picks]
    start, end = event.seconds
    return render(
        "event",
        start=start,
        end=end,
        frames=event.end - event.start + 1,
        shown=len(distinct),
        distinct=len(first_seen),
        captions=[(round(i * event.line_seconds, 2), text) for text, i in distinct],
    )


def explain_events(
    backend_factory,
    rulebook: RuleBook,
    events: list[Event],
    captions: dict[str, list[str]],
    journal_path,
    max_captions: int = 8,
    on_progress=None,
) -> dict:
    """Give each event its Verdict (set on the event), from the journal or asked now; the backend is made only
    when something is left to ask. Returns the cost: events asked, resumed, unparsed, without an answer."""
    journal = Journal(journal_path)
    texts = {e.event_id: event_observation(e, captions[e.video], max_captions) for e in events}

    def key(event: Event) -> str:  # another span of captions is another question
        return f"{event.event_id}#{hashlib.sha256(texts[event.event_id].encode()).hexdigest()[:12]}"

    todo = [e for e in events if key(e) not in journal]
    cost = {"events": len(events), "resumed": len(events) - len(todo), "tokens_in": 0, "tokens_out": 0}
    done = cost["resumed"]
    if on_progress:
        on_progress(done, len(events))

    def arrived(verdict: Verdict) -> None:
        nonlocal done
        if "request_error" not in verdict.meta:  # no answer is no verdict: the next run asks again
            journal.append([verdict.model_dump(mode="json", exclude_none=True)])
        cost["tokens_in"] += verdict.cost().tokens_in
        cost["tokens_out"] += verdict.cost().tokens_out
        done += 1
        if on_progress:
            on_progress(done, len(events))

    backend = backend_factory() if todo else None
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        recheck(backend, rulebook, [(key(e), texts[e.event_id]) for e in chunk], on_verdict=arrived)
    for event in events:
        record = journal.records.get(key(event))
        event.verdict = Verdict.model_validate(record) if record else None
    cost["unanswered"] = sum(e.verdict is None for e in events)
    cost["unparsed"] = sum(e.verdict is not None and e.verdict.verdict == "unparsed" for e in events)
    return cost
