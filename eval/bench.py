"""Throughput benchmarks that compare settings side by side in one run.

`backends`: the `hf` backend batched vs one request at a time, and the `openai` backend with 1 vs N
requests in flight against one server. Same prompts, same greedy sampling, same token budget in each
pair, so the ratio is the effect of batching or concurrency alone.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
from PIL import Image

from axr.reasoning.backends.base import Backend, Sampling, user


@dataclass
class BenchRow:
    backend: str
    model: str
    setting: str
    requests: int
    seconds: float
    tokens_out: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_out / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "requests_per_s": self.requests_per_s, "tokens_per_s": self.tokens_per_s}


QUESTIONS = [
    "Describe a scratched metal surface in one sentence.",
    "What makes a woven fabric look defective?",
    "Name two signs of a cracked bottle.",
    "Is a bicycle on a pedestrian walkway unusual? Answer briefly.",
    "What does a normal printed circuit board look like?",
    "Describe a stain on a carpet in one sentence.",
    "What is an anomaly in a video of a street?",
    "Give one cause of a dented can.",
]


def bench_requests(n: int, with_images: bool, seed: int = 0) -> list[list[dict]]:
    """n distinct prompts (with a small random image each when the model sees images)."""
    rng = np.random.default_rng(seed)
    requests = []
    for i in range(n):
        images = [Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))] if with_images else []
        requests.append([user(QUESTIONS[i % len(QUESTIONS)], images)])
    return requests


def timed(backend: Backend, setting: str, chunks: list[list], sampling: Sampling) -> BenchRow:
    """Run the chunks one after another (each chunk is one generate() call) and time the whole."""
    started = time.perf_counter()
    tokens = 0
    for chunk in chunks:
        tokens += sum(c.tokens_out for c in backend.generate(chunk, sampling))
    seconds = time.perf_counter() - started
    return BenchRow(backend.name, backend.model, setting, sum(len(c) for c in chunks), seconds, tokens)


def bench_hf(backend: Backend, n: int, batch: int, sampling: Sampling) -> list[BenchRow]:
    requests = bench_requests(n, backend.supports_images)
    backend.generate(requests[:1], sampling)  # warm-up: first call pays for lazy initialisation
    backend.batch_size = 1
    one = timed(backend, "one by one", [[r] for r in requests], sampling)
    backend.batch_size = batch
    batched = timed(backend, f"batch {batch}", [requests], sampling)
    return [one, batched]


def bench_openai(backend: Backend, n: int, concurrency: int, sampling: Sampling) -> list[BenchRow]:
    requests = bench_requests(n, False)
    backend.generate(requests[:1], sampling)
    backend.concurrency = 1
    one = timed(backend, "concurrency 1", [requests], sampling)
    backend.concurrency = concurrency
    many = timed(backend, f"concurrency {concurrency}", [requests], sampling)
    return [one, many]


RUN_KEYS = ("engine", "workers", "ray_address")  # settings of the run, not of the task's pipeline


def split_label(text: str) -> tuple[str, str]:
    """'LABEL:key=value,...' -> (LABEL, 'key=value,...'); a setting without a label is its own label."""
    head, sep, rest = text.partition(":")
    return (head.strip(), rest) if sep and "=" not in head else (text, text)


def parse_setting(text: str) -> tuple[dict, dict]:
    """'batch=8,engine=ray' -> ({'pipeline.batch': 8}, {'engine': 'ray'}): task overrides (values read as
    YAML) and run options; '' keeps the task's own settings."""
    from axr.eval.tasks import parse_assignment

    pairs = [parse_assignment(part, "--setting") for part in filter(None, text.split(","))]
    overrides = {f"pipeline.{key}": value for key, value in pairs if key not in RUN_KEYS}
    return overrides, {key: value for key, value in pairs if key in RUN_KEYS}


def bench_task(configs: list, names: list[str], runs: list[dict], limit: int, workdir, backend_for) -> list[dict]:
    """Run the same `limit` samples of a task under each setting (a loaded TaskConfig and run options each,
    fresh run folders) and return one row per setting: throughput, cost, headline metrics. Local runs do not
    time loading the model; Ray runs time their actors loading it (not the cluster's start)."""
    from pathlib import Path

    from axr.eval.runner import LazyBackend, RunOptions, run

    quiet = {"on_message": lambda text: None}
    rows = []
    for number, (config, name, settings) in enumerate(zip(configs, names, runs, strict=True)):
        folder, options = Path(workdir) / f"setting-{number}", RunOptions(limit=limit, **settings)
        if options.engine == "ray":
            from axr.eval.ray_engine import PooledBackend, ray_cluster, ray_predictions

            with ray_cluster(options.ray_address, **quiet):
                started = time.perf_counter()
                pooled = LazyBackend(partial(PooledBackend, config.pipeline, options.workers))
                metrics = run(config, folder, pooled, options, ray_predictions(options.workers), {}, **quiet)
                pooled.close()
        else:
            with backend_for(config.pipeline) as loaded:  # before the clock starts
                started = time.perf_counter()
                metrics = run(config, folder, partial(_same, loaded), options, **quiet)
        seconds = time.perf_counter() - started
        cost = metrics["cost"]
        rows.append(
            {
                "setting": name,
                "samples": metrics["samples"],
                "seconds": round(seconds, 2),
                "samples_per_s": metrics["samples"] / seconds,
                "model_calls": cost["model_calls"],
                "tokens_in": cost["tokens_in"],
                "tokens_out": cost["tokens_out"],
                "tokens_out_per_s": cost["tokens_out"] / seconds,
                "auroc": metrics.get("auroc"),
                "unparsed_rate": metrics.get("unparsed_rate"),
                "errors": metrics["errors"],
            }
        )
    return rows


def bench_gate(config: dict, model: str, references: int, limit: int | None, bank_size: int) -> dict:
    """The visual gate alone on a task: a memory bank from `references` normal train images, then image AUROC
    on the test images and the share of VLM calls it saves at 80/95/100% recall."""
    from axr.eval.datasets import load_samples
    from axr.eval.metrics import binary_metrics
    from axr.eval.samples import dataset_root, select_samples
    from axr.reasoning.local_models import resolve_model
    from axr.reasoning.media import load_image
    from axr.reasoning.visual_gate import MemoryBank, PatchFeatures, calls_saved_at_recall

    dataset = config.dataset
    root, options = dataset_root(dataset), dataset.options
    normal = [s for s in load_samples(dataset.adapter, root, "train", **options) if s.gt_label == 0][:references]
    test = select_samples(
        [s for s in load_samples(dataset.adapter, root, "test", **options) if s.gt_label is not None], limit, (0, 1)
    )
    started = time.perf_counter()
    bank = MemoryBank(PatchFeatures(resolve_model(model)), bank_size).fit([load_image(s.image_path) for s in normal])
    fitted = time.perf_counter()
    results = bank.score([load_image(s.image_path) for s in test])
    scored = time.perf_counter()
    labels, scores = [s.gt_label for s in test], [r.score for r in results]
    metrics = binary_metrics(labels, scores, threshold=float(np.median(scores)))
    row = {
        "task": config.task,
        "model": model,
        "references": len(normal),
        "test_images": len(test),
        "auroc": metrics["auroc"],
        "ap": metrics["ap"],
        "fit_seconds": round(fitted - started, 2),
        "images_per_s": len(test) / (scored - fitted),
        "at_recall": [calls_saved_at_recall(labels, scores, r) for r in (0.8, 0.95, 1.0)],
    }
    return row


JUDGE_KINDS = ("reference", "paraphrase", "unrelated")


def judge_cases(limit: int | None = None) -> list[dict]:
    """The shipped judge-ordering cases (`eval/bench_data/judge_ordering.yaml`)."""
    import yaml

    from axr.reasoning.resources import package_dir

    cases = yaml.safe_load((package_dir("axr.eval") / "bench_data" / "judge_ordering.yaml").read_text())["cases"]
    return cases[:limit] if limit else cases


def _same(backend: Backend) -> Backend:
    return backend


def bench_judge(name: str, backend: Backend, cases: list[dict], journal_dir) -> dict:
    """One judge on every case's reference, paraphrase and unrelated text (each graded against the reference):
    mean total score (0-30) per kind, and the share of cases the judge orders right, pairwise."""
    from pathlib import Path

    from axr.eval.judge import judge_records
    from axr.eval.records import PredictionRecord
    from axr.reasoning.journal import Journal

    records = [
        PredictionRecord(
            sample_id=f"{case['id']}:{kind}",
            gt_rationale=case["reference"],
            verdict={"verdict": "anomalous", "rationale": case[kind]},
        )
        for case in cases
        for kind in JUDGE_KINDS
    ]
    journal = Journal(Path(journal_dir) / f"judge-ordering-{name}.jsonl", key="key")
    started = time.perf_counter()
    request_errors = judge_records(records, backend, name, journal)
    seconds = time.perf_counter() - started
    totals: dict[tuple[str, str], int] = {}
    for entry in journal.records.values():
        if not entry.get("unparsed"):
            case, kind = entry["sample_id"].rsplit(":", 1)
            totals[case, kind] = sum(entry["scores"].values())
    complete = [c["id"] for c in cases if all((c["id"], k) in totals for k in JUDGE_KINDS)]

    def share(better: str, worse: str) -> float | None:
        wins = [totals[c, better] > totals[c, worse] for c in complete]
        return round(float(np.mean(wins)), 3) if wins else None

    means = {k: round(float(np.mean([totals[c, k] for c in complete])), 2) if complete else None for k in JUDGE_KINDS}
    return {
        "judge": name,
        "cases": len(cases),
        "graded": len(complete),
        **{f"mean_{k}": v for k, v in means.items()},
        "paraphrase_over_unrelated": share("paraphrase", "unrelated"),
        "reference_over_unrelated": share("reference", "unrelated"),
        "reference_over_paraphrase": share("reference", "paraphrase"),
        "request_errors": request_errors,
        "seconds": round(seconds, 1),
        "tokens_out": int(sum(e.get("meta", {}).get("tokens_out", 0) for e in journal.records.values())),
    }


def bench_reasoner(configs: list, names: list[str], workdir, backend_for) -> list[dict]:
    """A caption task under several re-check settings (trigger alone, then each re-check model), each in its
    own run folder under `workdir` (a rerun resumes its re-checks) on the same frames: pooled AUC, its change
    from the first setting, how often the re-check agreed with the labels and the AUC a perfect re-checker of
    the same frames would reach, and the re-check's cost per re-checked frame."""
    from pathlib import Path

    from axr.eval.evaluate import evaluate

    rows = []
    for number, (config, name) in enumerate(zip(configs, names, strict=True)):
        started = time.perf_counter()
        server = config.pipeline.recheck.base_url if config.pipeline.recheck.backend == "openai" else None
        before = prefix_cache_counters(server)
        metrics = evaluate(config, Path(workdir) / f"setting-{number}", backend_for, on_message=lambda text: None)
        cost, seconds = metrics["cost"], time.perf_counter() - started
        checked = cost.get("frames_rechecked", 0)
        quality = metrics.get("recheck_quality", {})
        ceiling = quality.get("ceiling_frame_auc_pooled")
        rows.append(
            {
                "setting": name,
                "frame_auc_pooled": round(100 * metrics["frame_auc_pooled"], 2),
                "frames_rechecked": checked,
                "share_rechecked": round(cost.get("share_rechecked", 0.0), 4),
                "agreement_with_labels": quality.get("agreement_with_labels"),
                "ceiling_frame_auc_pooled": None if ceiling is None else round(100 * ceiling, 2),
                "unparsed": cost.get("unparsed", 0),
                "request_errors": cost.get("request_errors", 0),
                "tokens_in_per_frame": round(cost["tokens_in"] / checked, 1) if checked else 0.0,
                "tokens_out_per_frame": round(cost["tokens_out"] / checked, 1) if checked else 0.0,
                "seconds_per_frame": round(cost.get("recheck_seconds", 0.0) / checked, 3) if checked else 0.0,
                "seconds": round(seconds, 1),
                **_scoring_columns(metrics.get("scoring"), before, prefix_cache_counters(server)),
            }
        )
    for row in rows:
        row["auc_change"] = round(row["frame_auc_pooled"] - rows[0]["frame_auc_pooled"], 2)
    return rows


def _scoring_columns(scoring: dict | None, before: dict | None, after: dict | None) -> dict:
    """The scoring stage's part of a bench row: pooled AUC of the trigger alone, the model alone and fused on
    the same frames; distinct captions scored and their share of frames; tokens per frame; seconds per
    distinct caption; and the server's prefix-cache hit rate over this setting's requests."""
    scoring = scoring or {}
    parts = scoring.get("frame_auc_pooled", {})
    hit_rate = None
    if before and after and after["queries"] > before["queries"]:
        hit_rate = round((after["hits"] - before["hits"]) / (after["queries"] - before["queries"]), 3)
    return {
        **{
            f"auc_{part}": round(100 * parts[part], 2) if part in parts else None
            for part in ("trigger", "model", "fused")
        },
        "distinct_scored": scoring.get("distinct_scored"),
        "unanswered": scoring.get("unanswered"),
        "distinct_share_of_frames": scoring.get("distinct_share_of_frames"),
        "scoring_tokens_in_per_frame": scoring.get("tokens_in_per_frame"),
        "scoring_tokens_out_per_frame": scoring.get("tokens_out_per_frame"),
        "seconds_per_distinct_caption": scoring.get("seconds_per_caption"),
        "prefix_cache_hit_rate": hit_rate,
    }


def prefix_cache_counters(base_url: str | None) -> dict | None:
    """A vLLM server's prefix-cache counters (prompt tokens looked up, and found, in its cache), from its
    Prometheus endpoint; None for another server or none."""
    import httpx

    if not base_url:
        return None
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        text = httpx.get(f"{root}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    counters = {"queries": 0.0, "hits": 0.0}
    for line in text.splitlines():
        for name in counters:
            if line.startswith(f"vllm:prefix_cache_{name}_total"):
                counters[name] += float(line.rsplit(" ", 1)[1])
    return counters if counters["queries"] or "vllm:prefix_cache" in text else None


def bench_probe(config, train_config, bands: list[float], embedder=None) -> list[dict]:
    """What the caption re-check can add at best under `uncertain` bands, with three label sources on the
    same chosen frames of `config`'s held-out videos: the rule keywords (anomalous when the caption matches an
    anomaly rule: what template SFT targets teach), a probe that learned from labels (logistic regression on
    MiniLM caption embeddings of `train_config`'s REFERENCE videos, all their labelled frames), and the labels
    themselves (the ceiling). Each is merged as a model's verdicts are. Evaluation only: the probe reads anomaly
    labels, which the few-shot-normal protocol never does; the evaluated videos are never trained on."""
    from sklearn.linear_model import LogisticRegression

    from axr.eval.datasets.captions import task_rulebook, task_videos
    from axr.reasoning.caption_detector import CaptionDetector
    from axr.reasoning.embedding import Embedder

    embedder = embedder or Embedder()
    train_refs, _, _ = task_videos(train_config)
    captions = [c for v in train_refs for c in v.captions]
    labels = [y for v in train_refs for y in v.labels]
    if len(set(labels)) < 2:
        raise ValueError(f"{train_config.task}: the reference videos need normal and anomalous frames for the probe")
    probe = LogisticRegression(class_weight="balanced", max_iter=3000).fit(embedder.encode(captions), labels)
    book, (reference, held_out, _) = task_rulebook(config), task_videos(config)
    settings = config.pipeline.model_copy(deep=True)
    settings.recheck.policy = "uncertain"
    # fitted and scored once: the band only chooses frames and bounds the merge, not the scores or threshold
    detector = CaptionDetector(book, settings, config.split.scene_pattern, embedder, config.dataset.line_seconds)
    detection = detector.fit(reference, held_out).score(held_out)
    rows = []
    for band in bands:
        settings.recheck.band = band
        rows.append({"band": band, **_probe_row(detector, detection, held_out, probe, embedder)})
    return rows


def _probe_row(detector, detection, held_out, probe, embedder) -> dict:
    """One band of `bench_probe`: pooled AUC of the trigger stage, then with each label source merged."""
    from axr.eval.metrics import frame_metrics
    from axr.reasoning.schema import Verdict

    truth = {v.video: v.labels for v in held_out}
    chosen = detector.chosen_for_recheck(held_out, detection)
    frames, texts = [(v.video, i) for v, i in chosen], [v.captions[i] for v, i in chosen]
    labels = [v.labels[i] == 1 for v, i in chosen]
    said = {
        "keywords": [bool(detection.results[v.video][i].keyword_hits) for v, i in chosen],
        "probe": [bool(p) for p in probe.predict(embedder.encode(texts))] if texts else [],
    }

    def pooled_auc(scores) -> float:
        return round(100 * frame_metrics(truth, scores, detection.threshold)["frame_auc_pooled"], 2)

    row = {"frames_rechecked": len(chosen), "trigger": pooled_auc(detection.scores)}
    merged = {"ceiling": detector.ceiling_scores(held_out, detection)}
    for name, answers in said.items():
        verdicts = [Verdict(verdict="anomalous" if a else "normal", confidence=1.0) for a in answers]
        merged[name] = detector.merged_copy(detection, dict(zip(frames, verdicts, strict=True)))
        row[f"{name}_agrees"] = round(float(np.mean(np.equal(answers, labels))), 3) if chosen else None
    for name in ("keywords", "probe", "ceiling"):
        row[name] = pooled_auc(merged[name])
        row[f"{name}_change"] = round(row[name] - row["trigger"], 2)
    return row


class LabelledScorer:
    """A stand-in for a caption scorer of known quality, for analysis only (it reads the anomaly labels):
    each distinct caption's score is the share of anomalous frames among the evaluated frames that carry it
    (0 for a caption seen only on normal references), plus Gaussian noise of scale `noise`. No noise is a
    perfect caption-level scorer; more noise, a weaker one."""

    def __init__(self, videos, noise: float, seed: int = 0):
        from axr.reasoning.scoring import normalise

        frames: dict[str, list[int]] = {}
        for video in videos:
            for caption, label in zip(video.captions, video.labels, strict=True):
                frames.setdefault(normalise(caption), []).append(label)
        rng = np.random.default_rng(seed)
        self.truth = {c: float(np.mean(y)) + noise * rng.standard_normal() for c, y in sorted(frames.items())}
        self.noise, self.rng = noise, rng

    def known(self, captions: list[str]) -> dict[str, float]:
        from axr.reasoning.scoring import normalise

        return {c: self.truth.get(normalise(c), self.noise * float(self.rng.standard_normal())) for c in captions}

    score = known


def bench_fusion(config, noises: list[float], weights: list[float], embedder=None) -> list[dict]:
    """How good a caption scorer must be for the fusion to help: on `config`'s held-out frames, pooled AUC of
    the trigger alone, of a scorer of known quality alone (`LabelledScorer` at each noise level) and fused with
    the trigger at each weight. Evaluation only: the scorer reads labels, so this says what a model would need,
    not what one does; the reasoner bench gives a real model's figures in the same columns."""
    from axr.eval.datasets.captions import task_rulebook, task_videos
    from axr.eval.metrics import frame_metrics
    from axr.reasoning.caption_detector import CaptionDetector
    from axr.reasoning.embedding import Embedder

    if config.pipeline.trigger.novelty:
        embedder = embedder or Embedder()
    book, (reference, held_out, _) = task_rulebook(config), task_videos(config)
    truth = {v.video: v.labels for v in held_out}
    settings = config.pipeline.model_copy(deep=True)
    settings.scoring.policy = "all"
    rows = []
    for noise in noises:
        detector = CaptionDetector(book, settings, config.split.scene_pattern, embedder, config.dataset.line_seconds)
        detector.fit(reference, held_out, LabelledScorer([*reference, *held_out], noise))

        def pooled_auc(scores, threshold=detector.threshold) -> float:
            return round(100 * frame_metrics(truth, scores, threshold)["frame_auc_pooled"], 2)

        parts = detector.part_scores(held_out, weights)
        row = {"noise": noise, "trigger": pooled_auc(parts["trigger"]), "model": pooled_auc(parts["model"])}
        rows.append(row | {f"fused_{w:g}": pooled_auc(parts[f"fused_{w:g}"]) for w in weights})
    return rows


def process_cost(argv: list[str], env: dict | None = None) -> dict:
    """Whole-process CPU seconds (user + system), wall seconds and peak resident memory (MiB) of a command,
    from the kernel's accounting of that child alone (`os.wait4`); its last stdout line is kept."""
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryFile() as out:
        began = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        last = (out.read().decode(errors="replace").strip().splitlines() or [""])[-1]
    if child.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited with {child.returncode}")
    return {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "wall_s": round(wall, 2),
        "peak_mib": round(usage.ru_maxrss / 1024),  # KiB on Linux
        "output": last,
    }


def bench_cost(tasks: list[str], runs: int, workdir, cold: bool = False) -> list[dict]:
    """AXR's no-model caption run (`axr eval run TASK`, the held-out videos) and AnomalyRuler-base as it
    ships (pandas' EWM, scikit-learn's AUC, every video), each a fresh process, `runs` times; medians.
    `cold`: each AXR run starts with an empty cache (MiniLM loaded, every caption embedded)."""
    import json
    import os
    import sys
    from pathlib import Path

    from axr.eval.tasks import load_task, task_file_path

    rows = []
    for task in tasks:
        data_dir = str(task_file_path(load_task(task).dataset.data_dir))
        commands = {
            "axr eval run": [sys.executable, "-m", "axr", "eval", "run", task],
            "AnomalyRuler-base": [sys.executable, "-m", "axr.eval.anomalyruler_base", data_dir],
        }
        for process, argv in commands.items():
            measured = []
            for i in range(runs):
                env = dict(os.environ)
                if process == "axr eval run":
                    argv = [*commands[process], "--output", str(Path(workdir) / f"{task}-{i}")]
                    if cold:
                        env["AXR_CACHE"] = str(Path(workdir) / f"cache-{task}-{i}")
                measured.append(process_cost(argv, env))
            row = {"task": task, "process": process, "runs": runs}
            for key in ("cpu_s", "wall_s", "peak_mib"):
                row[key] = float(np.median([m[key] for m in measured]))
            if process == "axr eval run":
                metrics = json.loads((Path(workdir) / f"{task}-0" / "metrics.json").read_text())
                row["auc"] = f"{metrics['frame_auc_pooled']:.4f} ({metrics['split']['evaluated_videos']} held-out)"
            else:
                row["auc"] = f"{measured[0]['output']} (all videos)"
            rows.append(row)
    return rows
