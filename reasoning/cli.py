"""`axr caption | induce | detect`: perception, rule induction and detection from the command line (the model
commands `models | serve | chat | ui` are in `serve_cli.py`). The root command (`axr.cli`) mounts both beside
`axr eval`, `axr train` and `axr data`. Heavy libraries (torch, transformers, vLLM) load inside commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from axr.reasoning.backends import BackendError, Sampling
from axr.reasoning.caption_detector import detect_rows
from axr.reasoning.console import BACKEND_HELP, MODEL_HELP, err, fail, make_backend, progress_bar
from axr.reasoning.direct_detect import detect_images
from axr.reasoning.media import MediaError
from axr.reasoning.observations import observations_from
from axr.reasoning.settings import POLICIES, DetectorSettings, InductionSettings, SmoothingSettings
from axr.reasoning.text_files import MAX_CAPTION_CHARS

app = typer.Typer(
    help="AXR: vision-language models that say whether something is anomalous, and why.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command(
    epilog="Examples:\n\n"
    "  axr caption images/ --backend hf --model tiny-qwen2.5-vl --out captions.jsonl\n\n"
    "  axr caption clip.mp4 --fps 2 --backend openai --model Qwen/Qwen2.5-VL-3B-Instruct "
    "--base-url http://127.0.0.1:8000/v1\n\n"
    "  axr caption images/ --backend openai --model smollm2 --text-only   (a text model reads image statistics)"
)
def caption(
    inputs: list[Path] = typer.Argument(..., help="image files, folders of images, or video files"),
    backend_name: str = typer.Option("hf", "--backend", help=BACKEND_HELP),
    model: str = typer.Option("tiny-qwen2.5-vl", help=MODEL_HELP),
    out: Path = typer.Option(Path("captions.jsonl"), help="JSONL output, one record per image or frame"),
    subject: str = typer.Option("scene", help="scene (people and objects) or object (a product's surface)"),
    batch_size: int = typer.Option(8, help="images per model call (hf) or per dispatch (others)"),
    max_tokens: int = typer.Option(1024, help="token budget per caption (captions are capped at 800 characters)"),
    repetition_penalty: float = typer.Option(1.1, help="above 1 discourages small models from looping"),
    cache: Path = typer.Option(None, help="SQLite caption cache (default $AXR_CACHE/captions.sqlite)"),
    no_cache: bool = typer.Option(False, help="neither read nor write the cache"),
    fps: float = typer.Option(None, help="frames per second to sample from videos"),
    stride: int = typer.Option(None, help="take every n-th frame of videos"),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", help="openai: server URL(s), comma-separated"),
    concurrency: int = typer.Option(8, help="openai: requests in flight"),
    timeout: float = typer.Option(120.0, help="openai: seconds per request"),
    text_only: bool = typer.Option(False, help="openai: the model reads text only; send image statistics"),
    adapter: str = typer.Option(None, help="hf/vllm: a peft LoRA adapter folder"),
):
    """Caption images or video frames (perception), batched and cached; records go to a JSONL file."""
    from axr.reasoning.perception import CaptionCache, Captioner, collect_media, default_caption_cache

    if subject not in ("scene", "object"):
        fail(f"--subject must be scene or object, not {subject!r}")
    if fps is not None and stride is not None:
        fail("give either --fps or --stride, not both")
    for path in inputs:
        if not path.exists():
            fail(f"{path}: no such file or folder")
    try:
        items = list(collect_media(inputs, fps=fps, stride=stride))
    except MediaError as error:
        fail(str(error))
    if not items:
        fail("no images or videos found in the inputs")
    backend = make_backend(backend_name, model, base_url, adapter, batch_size, concurrency, timeout, text_only)
    store = None if no_cache else CaptionCache(cache or default_caption_cache())
    size = batch_size if backend_name == "hf" else max(batch_size, concurrency)
    sampling = Sampling(max_tokens=max_tokens, repetition_penalty=repetition_penalty)
    captioner = Captioner(backend, store, subject, size, sampling)
    counts = {"captioned": 0, "cached": 0, "failed": 0, "unreadable": 0}
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink, progress_bar() as bar:
        task = bar.add_task("captioning", total=sum(1 for i in items if not isinstance(i, tuple)))
        try:
            for record in captioner.run(items, on_captioned=lambda n: bar.advance(task, n)):
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                if "error" in record:
                    counts["failed"] += 1
                    counts["unreadable"] += not record["error"].startswith("unparsed")
                    err.print(f"[yellow]skipped[/] {record['error']}", highlight=False)
                else:
                    counts["cached" if record["cached"] else "captioned"] += 1
        except BackendError as error:
            fail(str(error))
    seconds = time.perf_counter() - started
    err.print(
        f"{counts['captioned']} captioned, {counts['cached']} from cache, {counts['failed']} failed "
        f"in {seconds:.1f} s -> {out}",
        highlight=False,
    )
    if counts["unreadable"] == len(items):
        raise typer.Exit(1)  # no input could be read: a script must not take this run for a good one


@app.command(
    epilog="Examples:\n\n"
    "  axr induce normal_captions.jsonl --backend openai --model smollm2 --out rules.yaml\n\n"
    "  axr induce good_parts/ --domain object --backend hf --model Qwen/Qwen2.5-VL-3B-Instruct --out rules.yaml"
)
def induce(
    references: list[Path] = typer.Argument(..., help="normal references: caption .jsonl/.txt, or images/videos"),
    out: Path = typer.Option(Path("rules.yaml"), help="the rule book to write (YAML)"),
    backend_name: str = typer.Option("openai", "--backend", help=BACKEND_HELP),
    model: str = typer.Option("smollm2", help=MODEL_HELP),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", help="openai: server URL(s)"),
    domain: str = typer.Option(None, help="scene (human activity, environment) or object (appearance, ...)"),
    sections: str = typer.Option(None, help="comma-separated section names (default: the domain's)"),
    batches: int = typer.Option(None, help="n seeded induction batches (default 10)"),
    per_batch: int = typer.Option(None, help="m references per batch (default 3)"),
    seed: int = typer.Option(None, help="seed for drawing the batches (default 0)"),
    name: str = typer.Option("induced", help="the rule book's name"),
):
    """Induce a rule book (normal and anomaly rules, keywords, support) from a few normal references."""
    from axr.reasoning.embedding import Embedder
    from axr.reasoning.induction import InductionError
    from axr.reasoning.induction import induce as run_induction

    for path in references:
        if not path.exists():
            fail(f"{path}: no such file or folder")
    given = {"domain": domain, "batches": batches, "per_batch": per_batch, "seed": seed}
    if sections is not None:
        given["sections"] = [s.strip() for s in sections.split(",") if s.strip()]
    config = InductionSettings(**{key: value for key, value in given.items() if value is not None})
    text_only = backend_name == "openai" and all(p.suffix in (".txt", ".jsonl") for p in references)
    backend = make_backend(backend_name, model, base_url, text_only=text_only)
    try:
        found = observations_from(references, backend, "object" if config.domain == "object" else "scene", _say)
    except ValueError as error:
        fail(str(error))
    rows = [r for r in readable_rows(found, "normal references") if r.text]  # a blank line is no reference
    if not rows:
        fail("no usable normal references in the inputs")
    embedder = Embedder()
    try:
        with progress_bar() as bar:
            job = bar.add_task("model answers", total=None)
            book = run_induction(
                backend,
                [(r.sample_id, r.text) for r in rows],
                config,
                embedder,
                name,
                on_message=lambda text: bar.console.print(text, highlight=False),
                on_progress=lambda done, total: bar.update(job, completed=done, total=total),
            )
    except InductionError as error:
        partial = out.with_name(out.stem + ".partial.yaml")
        error.partial.save(partial)
        fail(f"{error}; what was induced is in {partial}")
    except (ValueError, BackendError) as error:
        fail(str(error))
    book.save(out)
    counts = f"{len(book.rules('normal'))} normal and {len(book.rules('anomaly'))} anomaly rules"
    err.print(f"wrote {out}: {counts} from {len(rows)} references", highlight=False)


@app.command(
    epilog="Examples:\n\n"
    "  axr detect captions.jsonl --rules rules.yaml --reference normal.jsonl --explain\n\n"
    "  axr detect cam1.txt --rules surveillance --reference normal.txt --fps 1 --score --events --explain "
    "--backend openai --model qwen2.5-coder-1.5b --base-url http://127.0.0.1:8001/v1\n\n"
    "  axr detect video_captions.txt --rules rule_ped2.txt --recheck uncertain --backend openai --model smollm2\n\n"
    "  axr detect part.png --direct --reference good1.png --reference good2.png --rules rules.yaml "
    "--backend hf --model tiny-qwen2.5-vl"
)
def detect(
    inputs: list[Path] = typer.Argument(..., help="caption .jsonl/.txt files, or images/videos"),
    rules: Path = typer.Option(None, help="a RuleBook YAML or AnomalyRuler rule file"),
    references: list[Path] = typer.Option([], "--reference", help="normal references (captions or images)"),
    out: Path = typer.Option(Path("verdicts.jsonl"), help="JSONL of Verdicts"),
    recheck: str = typer.Option(None, help="model re-check: none (default) | uncertain | positives | all"),
    band: float = typer.Option(
        None, help="uncertain: re-check when |score - threshold| <= band (trigger scale 0-2; default 0.1)"
    ),
    threshold: float = typer.Option(None, help="fixed trigger threshold (default: 95th percentile of --reference)"),
    direct: bool = typer.Option(False, help="images straight to the VLM with reference images, no captions"),
    backend_name: str = typer.Option("hf", "--backend", help=BACKEND_HELP),
    model: str = typer.Option("tiny-qwen2.5-vl", help=MODEL_HELP),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", help="openai: server URL(s)"),
    novelty: bool = typer.Option(
        None, help="add MiniLM novelty against the references to the trigger score (default: on)"
    ),
    window: int = typer.Option(
        None, help="centred smoothing window in caption lines of one video (1 = none; default: 2.5 s of --fps)"
    ),
    fps: float = typer.Option(None, help="caption lines per second of video (default 24)"),
    subject: str = typer.Option("scene", help="for captioning images: scene or object"),
    explain: bool = typer.Option(False, help="print each verdict, the rules it broke and the evidence"),
    score: bool = typer.Option(
        False, help="the model scores each distinct caption once (one token) and it is fused with the trigger"
    ),
    events: bool = typer.Option(
        False, help="have the model explain each detected event (a run of flagged frames) once: OUT.events.jsonl"
    ),
    gate: str = typer.Option(None, help="direct: send only images the visual gate flags: THRESHOLD or top:FRACTION"),
    hint: bool = typer.Option(False, help="direct: tell the VLM where the visual gate saw the most unusual region"),
    retrieve: int = typer.Option(0, help="direct: show each image only its K most similar references (0 = all)"),
    gate_model: str = typer.Option(None, help="the VLM whose vision encoder the gate uses (default --model)"),
    draw: Path = typer.Option(None, help="direct: write each image with its verdict's box (and the gate's map)"),
    encoding: str = typer.Option(None, help="caption files' encoding (default: UTF-8, or UTF-16 with a BOM)"),
):
    """Judge observations against a rule book: trigger stage, optional model re-check, smoothing per video.

    With --direct, images go straight to the VLM with normal reference images; the visual gate (patch
    features of the VLM's vision encoder against the references) can decide which images are worth a call."""
    from axr.reasoning.rulebook_import import load_rules

    for path in [*inputs, *references]:
        if not path.exists():
            fail(f"{path}: no such file or folder")
    book = load_rules(rules) if rules else None
    skipped: list[dict] = []  # unreadable inputs, recorded beside the verdicts
    found = []  # detected events, with --events
    if events and direct:
        fail("--events explains the caption detector's events; --direct already gives each image a verdict")
    if direct:
        visual = {"gate": gate, "hint": hint, "retrieve": retrieve, "gate_model": gate_model or model, "draw": draw}
        backend = make_backend(backend_name, model, base_url)
        window = window or SmoothingSettings().window_lines(1 / fps if fps else None)
        verdicts, skipped = detect_images(backend, inputs, references, book, subject, window, visual, _say)
    else:
        if book is None:
            fail("--rules is required (a RuleBook YAML or AnomalyRuler rule file), or use --direct")
        if recheck is not None and recheck not in POLICIES:
            fail(f"--recheck must be one of {', '.join(POLICIES)}")
        given = {
            "trigger": {"novelty": novelty},
            "smoothing": {"window": window},
            "threshold": {"value": threshold},
            "recheck": {"policy": recheck, "band": band},
            "events": {"explain": events or None},
            "scoring": {"policy": "all" if score else None},
        }
        settings = DetectorSettings(**{k: {f: v for f, v in d.items() if v is not None} for k, d in given.items()})
        line_seconds = 1 / fps if fps else None
        verdicts, found, skipped = _detect_observations(
            inputs, references, book, settings, backend_name, model, base_url, subject, out, line_seconds, encoding
        )
    with out.open("w", encoding="utf-8") as sink:
        for verdict in verdicts:
            sink.write(verdict.model_dump_json(exclude_none=True) + "\n")
        for record in skipped:  # an unreadable input is recorded with its error, not left out
            sink.write(json.dumps(record) + "\n")
    if explain:
        _explain(verdicts, book)
    if events:
        _write_events(found, out.with_name(out.stem + ".events.jsonl"), explain)
    flagged = sum(v.verdict == "anomalous" for v in verdicts)
    unreadable = f", {len(skipped)} unreadable inputs recorded with their error" if skipped else ""
    err.print(f"{len(verdicts)} verdicts, {flagged} anomalous{unreadable} -> {out}", highlight=False)
    if notes := _caption_notes(verdicts):
        err.print(notes, highlight=False)


def _say(message: str) -> None:
    err.print(message, highlight=False)


def _detect_observations(
    inputs, references, book, settings, backend_name, model, base_url, subject, out, line_seconds=None, encoding=None
):
    """(verdicts, events, error records of the rows and files that could not be read)."""
    needs_model = (
        settings.recheck.policy != "none"
        or settings.events.explain
        or settings.scoring.policy != "none"
        or any(p.suffix not in (".txt", ".jsonl") for p in [*inputs, *references])
    )
    text_only = backend_name == "openai" and all(p.suffix in (".txt", ".jsonl") for p in [*inputs, *references])
    backend = make_backend(backend_name, model, base_url, text_only=text_only) if needs_model else None
    try:
        found = observations_from(inputs, backend, subject, _say, encoding)
        normal = observations_from(references, backend, subject, _say, encoding)
    except ValueError as error:
        fail(str(error))
    if not found.rows:
        readable_rows(found, "captions")
        fail("no observations in the inputs")
    if references:
        readable_rows(normal, "reference captions")  # a reference row left out changes no verdict's record
    embedder = None
    if settings.trigger.novelty and normal.rows:
        from axr.reasoning.embedding import Embedder

        embedder = Embedder()
    with progress_bar() as bar:
        job = bar.add_task("model answers", total=None, visible=False)
        verdicts, events = detect_rows(
            found.rows,
            normal.rows,
            book,
            settings,
            embedder,
            backend,
            out.parent,
            on_progress=lambda done, total: bar.update(job, completed=done, total=total, visible=True),
            on_message=_say,
            line_seconds=line_seconds,
        )
    return verdicts, events, [_bad_row_record(problem) for problem in found.bad_rows]


def readable_rows(found, what: str) -> list:
    """The rows read; each row left out is said, and none read at all ends the command on its first problem."""
    if found.bad_rows and not found.rows:
        more = f" (and {len(found.bad_rows) - 1} more)" if len(found.bad_rows) > 1 else ""
        fail(f"no readable {what}: {found.bad_rows[0]}{more}")
    for problem in found.bad_rows:
        _say(f"left out: {problem}")
    return found.rows


def _bad_row_record(problem: str) -> dict:
    """A row that could not be read, as a record beside the verdicts: its place ("file:line") and why."""
    place = problem.split(": ", 1)[0]
    return {"sample_id": place, "error": problem}


def _caption_notes(verdicts) -> str:
    """What the run did to captions as they came: cut (too long) and blank (no caption)."""
    cut = sum(bool(v.meta.get("caption_cut")) for v in verdicts)
    blank = sum(bool(v.meta.get("no_caption")) for v in verdicts)
    parts = [f"{cut} captions longer than {MAX_CAPTION_CHARS} characters cut to that length"] if cut else []
    parts += [f"{blank} frames with no caption (blank lines) judged normal, with no evidence"] if blank else []
    return "; ".join(parts)


def _write_events(events, path: Path, explain: bool) -> None:
    """The detected events with their verdicts, one JSON line each; printed as a person reads them with
    --explain."""
    path.write_text("".join(json.dumps(e.record(), ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    if explain:
        console = Console()
        for event in events:
            start, end = event.seconds
            verdict = event.verdict
            what = "no answer (a rerun asks again)" if verdict is None else verdict.verdict
            console.print(f"[bold]event {escape(event.event_id)}[/] {start}-{end} s: {escape(what)}")
            if verdict is not None and verdict.verdict != "unparsed":
                for part in ("what", "why", "how"):
                    if text := getattr(verdict.rationale, part, None):
                        console.print(f"  {part}: {escape(text)}")
                if verdict.rules_matched:
                    console.print(f"  rules: {escape(', '.join(verdict.rules_matched))}; severity {verdict.severity}")
    err.print(f"{len(events)} events -> {path}", highlight=False)


def _explain(verdicts, book) -> None:
    texts = {r.id: r.text for r in book.rules()} if book else {}
    console = Console()
    for v in verdicts:
        colour = {"anomalous": "red", "normal": "green"}.get(v.verdict, "yellow")
        score = f"{v.score:.2f}" if v.score is not None else "-"
        console.print(f"[bold]{escape(v.sample_id or '')}[/]  [{colour}]{v.verdict}[/] score {score}")
        for rule_id in v.rules_matched:
            console.print(escape(f"  breaks [{rule_id}] {texts.get(rule_id, '?')}"))
        for line in v.evidence:
            console.print(f"  evidence: {escape(line)}")
        if v.verdict == "unparsed":
            console.print(f"  unparsed answer kept: {escape((v.raw or '')[:200])}")
