"""One self-contained HTML report of a run (or two side by side): summary table, ROC and PR curves,
confusion matrices, score timelines for video, and per-sample cards with the image, the verdict, the
rationale, the matched rules and the judge scores. Plots are inline SVG and images are embedded, so the
file opens anywhere with no network and no JavaScript.

A card shows a sample's image only when it lies inside the dataset folder the run's task.json names (links
resolved): a run folder from elsewhere cannot make the report read, and embed, any other file on this disk.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sklearn.metrics import precision_recall_curve, roc_curve

from axr.eval.records import PredictionRecord, load_records
from axr.eval.samples import dataset_root
from axr.eval.task_config import TaskConfig
from axr.reasoning.journal import Journal
from axr.reasoning.media import draw_box
from axr.reasoning.schema import location_box

COLORS = ("#1f77b4", "#d62728")
CARD_LIMIT = 120
TIMELINE_LIMIT = 12


@dataclass
class Run:
    name: str
    path: Path
    metrics: dict[str, Any]
    records: list[PredictionRecord]
    judgements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    media_root: Path | None = None  # the only folder whose images the cards may show

    @classmethod
    def load(cls, path: Path) -> Run:
        predictions = path / "predictions.jsonl"
        if not predictions.is_file():
            raise FileNotFoundError(f"{path}: no predictions.jsonl (not a run folder)")
        metrics_file = path / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        judgements: dict[str, list[dict[str, Any]]] = {}
        if (path / "judgements.jsonl").is_file():
            for entry in Journal(path / "judgements.jsonl", key="key").records.values():
                judgements.setdefault(entry["sample_id"], []).append(entry)
        records = load_records(predictions)
        return cls(path.name, path, metrics, records, judgements, _media_root(path / "task.json"))

    def scored(self) -> list[tuple[int, float, int]]:
        """(truth, score, predicted label) of every labelled, scored record (records of one shape, any mode)."""
        return [
            (r.gt_label, r.pred_score, int(r.pred_label == 1))
            for r in self.records
            if r.gt_label is not None and r.ok and r.pred_score is not None
        ]


def _media_root(task_file: Path) -> Path | None:
    """The run's dataset folder (a JSONL dataset file's folder), resolved; None when the run does not say."""
    try:
        root = dataset_root(TaskConfig.model_validate_json(task_file.read_text()).dataset)
    except (OSError, ValueError):
        return None
    if root is None:
        return None
    root = root.resolve()
    return root.parent if root.is_file() else root


def build_report(runs: list[Run]) -> str:
    title = " vs ".join(run.name for run in runs)
    parts = [
        f"<h1>AXR report: {_e(title)}</h1>",
        _summary(runs),
        _curves(runs),
        _confusions(runs),
        _timelines(runs[0]),
        _compare(runs) if len(runs) == 2 else "",
        _cards(runs[0]),
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{CSS}</style>"
        f"</head><body>{''.join(parts)}</body></html>"
    )


def write_report(run_dirs: list[Path], out: Path) -> Path:
    out.write_text(build_report([Run.load(Path(d)) for d in run_dirs]), encoding="utf-8")
    return out


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _e(value)


def _summary(runs: list[Run]) -> str:
    keys = [k for k, v in runs[0].metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    for run in runs[1:]:
        keys += [k for k, v in run.metrics.items() if isinstance(v, int | float) and k not in keys]
    cost_keys = ["model_calls", "tokens_in", "tokens_out", "seconds"]
    head = "".join(f"<th>{_e(run.name)}</th>" for run in runs)
    rows = "".join(_row(k, [run.metrics.get(k) for run in runs]) for k in keys)
    rows += "".join(_row(f"cost: {k}", [run.metrics.get("cost", {}).get(k) for run in runs]) for k in cost_keys)
    return f"<section id='summary'><h2>Summary</h2><table><tr><th>metric</th>{head}</tr>{rows}</table></section>"


def _row(name: str, values: list[Any]) -> str:
    return f"<tr><td>{_e(name)}</td>{''.join(f'<td>{_fmt(v)}</td>' for v in values)}</tr>"


def _svg_plot(curves: list[tuple[str, np.ndarray, np.ndarray]], xlabel: str, ylabel: str, diagonal: bool) -> str:
    size, pad = 300, 36
    scale = size - 2 * pad

    def point(x: float, y: float) -> str:
        return f"{pad + x * scale:.1f},{size - pad - y * scale:.1f}"

    body = [f"<rect x='{pad}' y='{pad}' width='{scale}' height='{scale}' fill='none' stroke='#999'/>"]
    if diagonal:
        body.append(f"<line x1='{pad}' y1='{size - pad}' x2='{size - pad}' y2='{pad}' stroke='#ccc'/>")
    for i, (label, xs, ys) in enumerate(curves):
        points = " ".join(point(x, y) for x, y in zip(xs, ys, strict=True))
        color = COLORS[i % len(COLORS)]
        body.append(f"<polyline class='curve' fill='none' stroke='{color}' stroke-width='2' points='{points}'/>")
        body.append(f"<text x='{pad + 6}' y='{pad + 16 + 14 * i}' fill='{color}' font-size='12'>{_e(label)}</text>")
    body.append(f"<text x='{size / 2}' y='{size - 8}' text-anchor='middle' font-size='12'>{xlabel}</text>")
    body.append(
        f"<text x='12' y='{size / 2}' font-size='12' transform='rotate(-90 12 {size / 2})' "
        f"text-anchor='middle'>{ylabel}</text>"
    )
    return f"<svg width='{size}' height='{size}' xmlns='http://www.w3.org/2000/svg'>{''.join(body)}</svg>"


def _curves(runs: list[Run]) -> str:
    roc, pr = [], []
    for run in runs:
        rows = run.scored()
        truth = np.array([r[0] for r in rows])
        if len(set(truth.tolist())) < 2:
            continue
        scores = np.array([r[1] for r in rows])
        fpr, tpr, _ = roc_curve(truth, scores)
        precision, recall, _ = precision_recall_curve(truth, scores)
        roc.append((run.name, fpr, tpr))
        pr.append((run.name, recall, precision))
    if not roc:
        return "<section id='curves'><h2>Curves</h2><p>Needs both normal and anomalous samples.</p></section>"
    return (
        f"<section id='curves'><h2>ROC and precision-recall</h2><div class='row'>"
        f"<figure id='roc'>{_svg_plot(roc, 'false positive rate', 'true positive rate', True)}</figure>"
        f"<figure id='pr'>{_svg_plot(pr, 'recall', 'precision', False)}</figure></div></section>"
    )


def _confusions(runs: list[Run]) -> str:
    tables = []
    for run in runs:
        counts = np.zeros((2, 2), dtype=int)
        for truth, _, predicted in run.scored():
            counts[truth, predicted] += 1
        tables.append(
            f"<table class='confusion'><caption>{_e(run.name)}</caption><tr><th></th><th>pred normal</th>"
            f"<th>pred anomalous</th></tr><tr><th>normal</th><td>{counts[0, 0]}</td><td>{counts[0, 1]}</td></tr>"
            f"<tr><th>anomalous</th><td>{counts[1, 0]}</td><td>{counts[1, 1]}</td></tr></table>"
        )
    return f"<section id='confusion'><h2>Confusion matrix</h2><div class='row'>{''.join(tables)}</div></section>"


def _timelines(run: Run) -> str:
    videos: dict[str, list[PredictionRecord]] = {}
    for record in run.records:
        if record.video is not None and record.frame is not None and record.pred_score is not None:
            videos.setdefault(record.video, []).append(record)
    if not videos:
        return ""
    threshold = run.metrics.get("threshold", run.metrics.get("frame_threshold"))
    svgs = [
        _timeline(name, sorted(rows, key=lambda r: r.frame), threshold)
        for name, rows in sorted(videos.items())[:TIMELINE_LIMIT]
    ]
    more = f"<p>{len(videos) - TIMELINE_LIMIT} more videos not drawn.</p>" if len(videos) > TIMELINE_LIMIT else ""
    return f"<section id='timelines'><h2>Score timelines</h2>{''.join(svgs)}{more}</section>"


def _timeline(name: str, rows: list[PredictionRecord], threshold: float | None) -> str:
    width, height = 640, 90
    scores = np.array([r.pred_score for r in rows], dtype=float)
    top = max(float(scores.max()), threshold or 0.0, 1e-9)
    step = width / max(len(rows) - 1, 1)
    shades = "".join(
        f"<rect x='{i * step:.1f}' y='0' width='{max(step, 1):.1f}' height='{height}' fill='#fbd'/>"
        for i, r in enumerate(rows)
        if r.gt_label == 1
    )
    points = " ".join(f"{i * step:.1f},{height - s / top * (height - 4):.1f}" for i, s in enumerate(scores))
    line = ""
    if threshold is not None:
        y = height - threshold / top * (height - 4)
        line = f"<line x1='0' x2='{width}' y1='{y:.1f}' y2='{y:.1f}' stroke='#888' stroke-dasharray='4'/>"
    return (
        f"<div class='timeline'><div>{_e(name)} (pink: ground-truth anomaly; dashed: threshold)</div>"
        f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>{shades}{line}"
        f"<polyline fill='none' stroke='#1f77b4' points='{points}'/></svg></div>"
    )


def _thumbnail(record: PredictionRecord, media_root: Path | None) -> str:
    media = record.media
    if not media or media_root is None or not Path(media).resolve().is_relative_to(media_root):
        return ""
    if not Path(media).is_file() or Path(media).suffix.lower() in (".mp4", ".avi", ".mkv", ".webm"):
        return ""
    try:
        image = Image.open(media).convert("RGB")
    except OSError:
        return ""
    image.thumbnail((224, 224))
    draw_box(image, record.gt_box, "#00c000")
    draw_box(image, location_box(record.verdict or {}), "#ff0000")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return f"<img alt='sample' src='data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}'/>"


def _verdict_html(record: PredictionRecord) -> str:
    if not record.ok:
        return f"<div class='verdict error'>error: {_e(record.error)}</div>"
    if _is_question(record):
        return f"<div class='verdict'>answer {_e(record.answer)} (truth {_e(record.gt_answer)})</div>"
    verdict = record.verdict
    if verdict is None:
        return f"<div class='verdict'>score {_fmt(record.pred_score)}, label {_e(record.pred_label)}</div>"
    rationale = verdict.get("rationale") or {}
    parts = [
        f"<div class='verdict {_e(verdict['verdict'])}'>{_e(verdict['verdict'])} "
        f"(score {_fmt(verdict.get('score'))}, type {_e(verdict.get('anomaly_type'))}, "
        f"severity {_e(verdict.get('severity'))})</div>"
    ]
    parts += [f"<div><b>{k}</b>: {_e(rationale[k])}</div>" for k in ("what", "why", "how") if rationale.get(k)]
    if verdict.get("rules_matched"):
        parts.append(f"<div class='rules'>rules: {_e(', '.join(verdict['rules_matched']))}</div>")
    if verdict.get("raw"):
        parts.append(f"<div class='raw'>unparsed: {_e(verdict['raw'][:300])}</div>")
    return "".join(parts)


def _card(record: PredictionRecord, judgements: list[dict[str, Any]], media_root: Path | None) -> str:
    truth = record.gt_label
    gt = f"truth: {'anomalous' if truth == 1 else 'normal' if truth == 0 else '?'}"
    if record.gt_type:
        gt += f" ({_e(record.gt_type)})"
    judged = "".join(
        f"<div class='judge'>{_e(j['judge'])}: "
        + ("unparsed" if j.get("unparsed") else ", ".join(f"{d} {s}/10" for d, s in j["scores"].items()))
        + "</div>"
        for j in judgements
    )
    return (
        f"<div class='card {_correctness(record)}' data-sample='{_e(record.sample_id)}'>"
        f"{_thumbnail(record, media_root)}"
        "<div class='body'>"
        f"<div class='id'>{_e(record.sample_id)}</div><div class='gt'>{gt}</div>{_verdict_html(record)}"
        f"{judged}</div></div>"
    )


def _correctness(record: PredictionRecord) -> str:
    """`right`, `wrong` or `unknown`: the card's colour says whether the verdict matches the truth, not which
    label it gave (a wrong "normal" must not look reassuring)."""
    if _is_question(record):
        return "right" if record.answer == record.gt_answer else "wrong"
    if not record.ok or record.gt_label is None:
        return "unknown"
    predicted = _label_of(record)
    if predicted is None:
        return "unknown"
    return "right" if predicted == record.gt_label else "wrong"


def _interesting_first(records: list[PredictionRecord]) -> list[PredictionRecord]:
    """Errors, then wrong verdicts, then the rest: what a reader looks for first."""

    def rank(record: PredictionRecord) -> int:
        if not record.ok:
            return 0
        return 1 if _label_of(record) != record.gt_label else 2

    return sorted(records, key=rank)


def _cards(run: Run) -> str:
    chosen = _interesting_first(run.records)[:CARD_LIMIT]
    cards = "".join(_card(r, run.judgements.get(r.sample_id, []), run.media_root) for r in chosen)
    note = (
        f" (the first {CARD_LIMIT} of {len(run.records)}: errors and wrong verdicts first)"
        if len(run.records) > CARD_LIMIT
        else ""
    )
    return f"<section id='samples'><h2>Samples{note}</h2><div class='cards'>{cards}</div></section>"


def _compare(runs: list[Run]) -> str:
    first, second = ({r.sample_id: r for r in run.records} for run in runs)
    shared = sorted(set(first) & set(second))
    differing = [s for s in shared if _label_of(first[s]) != _label_of(second[s])][:CARD_LIMIT]
    rows = "".join(
        f"<div class='pair'>{_card(first[s], runs[0].judgements.get(s, []), runs[0].media_root)}"
        f"{_card(second[s], runs[1].judgements.get(s, []), runs[1].media_root)}</div>"
        for s in differing
    )
    return (
        f"<section id='compare'><h2>{_e(runs[0].name)} vs {_e(runs[1].name)}</h2><p>{len(shared)} shared "
        f"samples; {len(differing)} shown where the two runs disagree.</p>{rows}</section>"
    )


def _label_of(record: PredictionRecord):
    """What the run answered: the option letter of a question, else the predicted label."""
    return record.answer if _is_question(record) else record.pred_label


def _is_question(record: PredictionRecord) -> bool:
    """A multiple-choice question's record (it has options to choose from)."""
    return record.options is not None


CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 4px 8px; }
.row { display: flex; gap: 24px; flex-wrap: wrap; } figure { margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { display: flex; gap: 8px; border: 1px solid #ccc; border-radius: 6px; padding: 8px; width: 520px; }
.card img { width: 160px; height: auto; } .card .id { font-weight: bold; font-size: 13px; }
.card { overflow-wrap: anywhere; } .card .body { min-width: 0; }
.card.right { border-left: 6px solid #2a2; } .card.right .verdict { color: #060; }
.card.wrong { border-left: 6px solid #c00; background: #fff4f4; } .card.wrong .verdict { color: #b00; }
.card.wrong .verdict::before { content: "wrong: "; font-weight: bold; }
.verdict.error, .raw { color: #a50; }
.pair { display: flex; gap: 12px; margin-bottom: 12px; } .timeline { margin: 8px 0; }
"""
