"""`axr caption | induce | detect | models | serve | chat | ui`: the reasoning commands. The root command
(`axr.cli`) mounts them beside `axr eval`, `axr train` and `axr data`. Heavy libraries (torch, transformers,
vLLM) are imported inside commands only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from axr.reasoning.backends import BACKENDS, BackendError, Sampling
from axr.reasoning.caption_detector import DetectorSettings, detect_rows
from axr.reasoning.console import BACKEND_HELP, MODEL_HELP, err, fail, make_backend, progress_bar
from axr.reasoning.deduction import POLICIES
from axr.reasoning.direct_detect import detect_images
from axr.reasoning.media import MediaError
from axr.reasoning.vllm_server import CPU_SERVER_ENV, VLLMServer

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
    backend: str = typer.Option("hf", help=BACKEND_HELP),
    model: str = typer.Option("tiny-qwen2.5-vl", help=MODEL_HELP),
    out: Path = typer.Option(Path("captions.jsonl"), help="JSONL output, one record per image or frame"),
    subject: str = typer.Option("scene", help="scene (people and objects) or object (a product's surface)"),
    batch_size: int = typer.Option(8, help="images per model call (hf) or per dispatch (others)"),
    max_tokens: int = typer.Option(512, help="token budget per caption (captions are capped at 800 characters)"),
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
    from axr.reasoning.perception import DEFAULT_CACHE, CaptionCache, Captioner, collect_media

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
    engine = make_backend(backend, model, base_url, adapter, batch_size, concurrency, timeout, text_only)
    store = None if no_cache else CaptionCache(cache or DEFAULT_CACHE)
    size = batch_size if backend == "hf" else max(batch_size, concurrency)
    sampling = Sampling(max_tokens=max_tokens, repetition_penalty=repetition_penalty)
    captioner = Captioner(engine, store, subject, size, sampling)
    counts = {"captioned": 0, "cached": 0, "failed": 0}
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink, progress_bar() as bar:
        task = bar.add_task("captioning", total=sum(1 for i in items if not isinstance(i, tuple)))
        try:
            for record in captioner.run(items, progress=lambda n: bar.advance(task, n)):
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                if "error" in record:
                    counts["failed"] += 1
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


def observations_from(inputs: list[Path], engine, subject: str) -> list:
    """Observations from caption files as they are, or from images and videos captioned by `engine`."""
    from axr.reasoning.observations import ObservationRow, load_observations
    from axr.reasoning.perception import DEFAULT_CACHE, CaptionCache, Captioner, collect_media

    text = [p for p in inputs if p.suffix in (".txt", ".jsonl") or (p.is_dir() and not _has_images(p))]
    media = [p for p in inputs if p not in text]
    rows = load_observations(text)
    if media:
        if engine is None:
            fail("images and videos need a backend to caption them (--backend, --model)")
        captioner = Captioner(engine, CaptionCache(DEFAULT_CACHE), subject)
        for record in captioner.run(collect_media(media)):
            if "error" in record:
                err.print(f"[yellow]skipped[/] {record['error']}", highlight=False)
                continue
            frame = record.get("frame_index")
            group = record["sample_id"].rsplit("/", 1)[0] if frame is not None else None
            rows.append(ObservationRow(record["sample_id"], record["caption"], group, frame))
    return rows


def _has_images(folder: Path) -> bool:
    from axr.reasoning.media import IMAGE_SUFFIXES

    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*"))


@app.command(
    epilog="Examples:\n\n"
    "  axr induce normal_captions.jsonl --backend openai --model smollm2 --out rules.yaml\n\n"
    "  axr induce good_parts/ --domain object --backend hf --model Qwen/Qwen2.5-VL-3B-Instruct --out rules.yaml"
)
def induce(
    references: list[Path] = typer.Argument(..., help="normal references: caption .jsonl/.txt, or images/videos"),
    out: Path = typer.Option(Path("rules.yaml"), help="the rule book to write (YAML)"),
    backend: str = typer.Option("openai", help=BACKEND_HELP),
    model: str = typer.Option("smollm2", help=MODEL_HELP),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", help="openai: server URL(s)"),
    domain: str = typer.Option("scene", help="scene (human activity, environment) or object (appearance, ...)"),
    sections: str = typer.Option("", help="comma-separated section names (default: the domain's)"),
    batches: int = typer.Option(10, help="n seeded induction batches"),
    per_batch: int = typer.Option(3, help="m references per batch"),
    seed: int = typer.Option(0, help="seed for drawing the batches"),
    name: str = typer.Option("induced", help="the rule book's name"),
):
    """Induce a rule book (normal and anomaly rules, keywords, support) from a few normal references."""
    from axr.reasoning.embedding import Embedder
    from axr.reasoning.induction import InductionConfig, InductionError
    from axr.reasoning.induction import induce as run_induction

    for path in references:
        if not path.exists():
            fail(f"{path}: no such file or folder")
    text_only = backend == "openai" and all(p.suffix in (".txt", ".jsonl") for p in references)
    engine = make_backend(backend, model, base_url, text_only=text_only)
    rows = observations_from(references, engine, "object" if domain == "object" else "scene")
    if not rows:
        fail("no usable normal references in the inputs")
    config = InductionConfig(
        domain=domain,
        sections=[s.strip() for s in sections.split(",") if s.strip()],
        batches=batches,
        per_batch=per_batch,
        seed=seed,
    )
    try:
        book = run_induction(
            engine,
            [(r.sample_id, r.text) for r in rows],
            config,
            Embedder(),
            name,
            progress=lambda m: err.print(m, highlight=False),
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
    "  axr detect video_captions.txt --rules rule_ped2.txt --recheck uncertain --backend openai --model smollm2\n\n"
    "  axr detect part.png --direct --reference good1.png --reference good2.png --rules rules.yaml "
    "--backend hf --model tiny-qwen2.5-vl"
)
def detect(
    inputs: list[Path] = typer.Argument(..., help="caption .jsonl/.txt files, or images/videos"),
    rules: Path = typer.Option(None, help="a RuleBook YAML or AnomalyRuler rule file"),
    references: list[Path] = typer.Option([], "--reference", help="normal references (captions or images)"),
    out: Path = typer.Option(Path("verdicts.jsonl"), help="JSONL of Verdicts"),
    recheck: str = typer.Option("none", help="model re-check: none | uncertain | positives | all"),
    band: float = typer.Option(0.1, help="uncertain: re-check when |score - threshold| <= band (trigger scale 0-2)"),
    threshold: float = typer.Option(None, help="fixed trigger threshold (default: 95th percentile of --reference)"),
    direct: bool = typer.Option(False, help="images straight to the VLM with reference images, no captions"),
    backend: str = typer.Option("hf", help=BACKEND_HELP),
    model: str = typer.Option("tiny-qwen2.5-vl", help=MODEL_HELP),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", help="openai: server URL(s)"),
    novelty: bool = typer.Option(True, help="add MiniLM novelty against the references to the trigger score"),
    window: int = typer.Option(61, help="centred smoothing window for frames of one video (1 = none)"),
    subject: str = typer.Option("scene", help="for captioning images: scene or object"),
    explain: bool = typer.Option(False, help="print each verdict, the rules it broke and the evidence"),
    gate: str = typer.Option(None, help="direct: send only images the visual gate flags: THRESHOLD or top:FRACTION"),
    hint: bool = typer.Option(False, help="direct: tell the VLM where the visual gate saw the most unusual region"),
    retrieve: int = typer.Option(0, help="direct: show each image only its K most similar references (0 = all)"),
    gate_model: str = typer.Option(None, help="the VLM whose vision encoder the gate uses (default --model)"),
    draw: Path = typer.Option(None, help="direct: write each image with its verdict's box (and the gate's map)"),
):
    """Judge observations against a rule book: trigger stage, optional model re-check, smoothing per video.

    With --direct, images go straight to the VLM with normal reference images; the visual gate (patch
    features of the VLM's vision encoder against the references) can decide which images are worth a call."""
    from axr.reasoning.rulebook_import import load_rules

    for path in [*inputs, *references]:
        if not path.exists():
            fail(f"{path}: no such file or folder")
    book = load_rules(rules) if rules else None
    if direct:
        visual = {"gate": gate, "hint": hint, "retrieve": retrieve, "gate_model": gate_model or model, "draw": draw}
        engine = make_backend(backend, model, base_url)
        verdicts = detect_images(engine, inputs, references, book, subject, window, visual, say=_say)
    else:
        if book is None:
            fail("--rules is required (a RuleBook YAML or AnomalyRuler rule file), or use --direct")
        settings = DetectorSettings(novelty=novelty, window=window, threshold=threshold, policy=recheck, band=band)
        verdicts = _detect_observations(inputs, references, book, settings, backend, model, base_url, subject, out)
    with out.open("w", encoding="utf-8") as sink:
        for verdict in verdicts:
            sink.write(verdict.model_dump_json(exclude_none=True) + "\n")
    if explain:
        _explain(verdicts, book)
    flagged = sum(v.verdict == "anomalous" for v in verdicts)
    err.print(f"{len(verdicts)} verdicts, {flagged} anomalous -> {out}", highlight=False)


def _say(message: str) -> None:
    err.print(message, highlight=False)


def _detect_observations(inputs, references, book, settings, backend, model, base_url, subject, out):
    if settings.policy not in POLICIES:
        fail(f"--recheck must be one of {', '.join(POLICIES)}")
    needs_model = settings.policy != "none" or any(p.suffix not in (".txt", ".jsonl") for p in [*inputs, *references])
    text_only = backend == "openai" and all(p.suffix in (".txt", ".jsonl") for p in [*inputs, *references])
    engine = make_backend(backend, model, base_url, text_only=text_only) if needs_model else None
    rows = observations_from(inputs, engine, subject)
    normal = observations_from(references, engine, subject)
    if not rows:
        fail("no observations in the inputs")
    embedder = None
    if settings.novelty and normal:
        from axr.reasoning.embedding import Embedder

        embedder = Embedder()
    with progress_bar() as bar:
        job = bar.add_task("re-check", total=None, visible=False)
        return detect_rows(
            rows,
            normal,
            book,
            settings,
            embedder,
            engine,
            out.parent,
            tick=lambda done, total: bar.update(job, completed=done, total=total, visible=True),
            say=_say,
        )


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


@app.command(epilog="Examples:\n\n  axr models\n\n  axr models --prepare   (export SmolLM2, build the tiny VLM)")
def models(prepare: bool = typer.Option(False, help="build the offline models into the cache now")):
    """Backends that can run here, and the models available offline."""
    import importlib.util

    from axr.reasoning import local_models
    from axr.reasoning.vllm_server import vllm_python

    table = Table("backend", "available", "what")
    needs = {"hf": "transformers", "vllm": "vllm", "openai": "httpx"}
    for name, (_, _, what) in BACKENDS.items():
        available = "yes" if importlib.util.find_spec(needs[name]) else "no"
        if name == "vllm" and available == "no":
            try:  # not in this Python, but `axr serve` can run the CPU build's own venv
                available = f"for axr serve: {vllm_python()}"
            except FileNotFoundError:
                pass
        table.add_row(name, available, escape(what))
    Console().print(table)
    table = Table("alias", "where", "state")
    for alias, build in local_models.ALIASES.items():
        try:
            where, state = (str(build()), "ready") if prepare else local_models.alias_state(alias)
        except FileNotFoundError as error:
            where, state = str(error), "missing"
        table.add_row(alias, where, state)
    try:
        table.add_row("minilm (embeddings)", str(local_models.minilm_path()), "ready")
    except FileNotFoundError as error:
        table.add_row("minilm (embeddings)", str(error), "missing")
    Console().print(table)


@app.command(
    epilog="Examples:\n\n  axr serve smollm2                  (then --backend openai --model smollm2 "
    "--base-url http://127.0.0.1:8000/v1)\n\n  axr serve qwen2.5-coder-1.5b --port 8001\n\n"
    "  axr serve Qwen/Qwen2.5-VL-7B-Instruct --host 0.0.0.0   (a GPU machine, reachable from others)"
)
def serve(
    model: str = typer.Argument(..., help=MODEL_HELP),
    name: str = typer.Option(None, help="the model name clients send (default: the alias or path given)"),
    port: int = typer.Option(8000),
    host: str = typer.Option("127.0.0.1", help="0.0.0.0 exposes the server to other machines"),
    device: str = typer.Option("auto", help="auto | cpu | gpu (auto: gpu when nvidia-smi sees one)"),
    max_model_len: int = typer.Option(4096, help="longest prompt + answer, in tokens"),
    log: Path = typer.Option(None, help="write vLLM's own log here (default: a file in the temp folder)"),
):
    """Serve a model with vLLM's OpenAI-compatible server, as AXR's tests do, until Ctrl-C."""
    import tempfile

    from axr.reasoning.local_models import resolve_model
    from axr.reasoning.vllm_server import has_gpu, server_args, vllm_python

    cpu = device == "cpu" or (device == "auto" and not has_gpu())
    log = log or Path(tempfile.mkstemp(prefix="axr-serve-", suffix=".log")[1])
    server = VLLMServer(
        str(vllm_python()),
        resolve_model(model),
        name or model,
        port=port,
        host=host,
        extra_args=server_args(cpu, max_model_len),
        log_path=log,
        ready_timeout_s=900,
        env={**CPU_SERVER_ENV, "HF_HUB_OFFLINE": "1"} if cpu else None,
    )
    err.print(f"starting vLLM on {'CPU' if cpu else 'GPU'} (log: {log}) ...", highlight=False)
    try:
        with server:
            err.print(
                f"serving {name or model}: --backend openai --model {name or model} "
                f"--base-url http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/v1   (Ctrl-C stops)",
                highlight=False,
                soft_wrap=True,
            )
            server.process.wait()
    except RuntimeError as error:
        fail(f"{error}; last lines: {' | '.join(log.read_text().splitlines()[-3:])}")
    except KeyboardInterrupt:
        err.print("stopped", highlight=False)


CHAT_HELP = """commands:
  /image PATH     add a query image          /ref PATH     add a normal reference image
  /rules PATH     use a rule book            /verdict      a structured verdict on the last image
  /save PATH      save the session (JSON)    /load PATH    load a saved session
  /help           this list                  /quit         leave (also Ctrl-D)
anything else is a question to the model"""


@app.command(
    epilog="Examples:\n\n  axr chat part.png --reference good1.png --reference good2.png --rules rules.yaml\n\n"
    "  axr chat part.png --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct --base-url http://127.0.0.1:8000/v1\n\n"
    "  axr chat --load session.json",
)
def chat(
    images: list[Path] = typer.Argument(None, help="query image(s)"),
    reference: list[Path] = typer.Option(None, "--reference", help="a normal reference image; repeat for several"),
    rules: Path = typer.Option(None, help="a RuleBook YAML or an AnomalyRuler rule file"),
    backend: str = typer.Option("hf", help=BACKEND_HELP),
    model: str = typer.Option("tiny-qwen2.5-vl", help=MODEL_HELP),
    base_url: str = typer.Option(None, help="server URL for the openai backend"),
    load: Path = typer.Option(None, help="continue a saved session"),
    subject: str = typer.Option("object", help="what the images show, e.g. 'metal bracket'"),
    text_only: bool = typer.Option(False, help="the model reads text only (no images are sent; no verdicts)"),
):
    """Chat about images in the terminal: ask questions, ask for a verdict, add images, save the session."""
    from axr.reasoning.chat import Chat, ChatError, Session

    engine = make_backend(backend, model, base_url, text_only=text_only)
    try:
        session = Session.load(load) if load else Session()
        conversation = Chat(engine, session, domain=subject)
        for path in images or []:
            conversation.add_image(str(path))
        for path in reference or []:
            if warning := conversation.add_reference(str(path)):
                err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        if rules:
            conversation.set_rules(str(rules))
    except ChatError as error:
        fail(str(error))
    out = Console()
    out.print(
        f"AXR chat: {len(conversation.session.images)} image(s), {len(conversation.session.references)} "
        "reference(s). /help for commands.",
        highlight=False,
    )
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            break
        if line.strip() in ("/quit", "/exit"):
            break
        try:
            conversation = _chat_turn(conversation, line, out)
        except ChatError as error:
            err.print(f"[yellow]{escape(str(error))}[/]", highlight=False)


def _chat_turn(conversation, line: str, out: Console):
    """Carry out one line of the terminal chat; returns the conversation (a new one after /load)."""
    from axr.reasoning.chat import Chat, Session

    command, _, argument = line.strip().partition(" ")
    argument = argument.strip()
    if command == "/help":
        out.print(CHAT_HELP, highlight=False)
    elif command == "/image":
        conversation.add_image(argument)
        out.print(f"added query image {argument}", highlight=False)
    elif command == "/ref":
        warning = conversation.add_reference(argument)
        out.print(f"added reference {argument}" + (f" ({warning})" if warning else ""), highlight=False)
    elif command == "/rules":
        conversation.set_rules(argument)
        out.print(f"using rules {argument}", highlight=False)
    elif command == "/verdict":
        verdict = conversation.judge()
        out.print_json(verdict.model_dump_json(exclude={"raw", "meta"}, exclude_none=True))
    elif command == "/save":
        out.print(f"saved {conversation.session.save(argument or 'axr-chat.json')}", highlight=False)
    elif command == "/load":
        conversation = Chat(conversation.backend, Session.load(argument), conversation.domain)
        out.print(f"loaded {argument}: {len(conversation.session.history) // 2} earlier turn(s)", highlight=False)
    elif command.startswith("/"):
        out.print(f"unknown command {command}; /help lists them", highlight=False)
    else:
        out.print("axr> ", end="", highlight=False)
        try:
            conversation.ask(line, on_piece=lambda piece: out.print(escape(piece), end="", highlight=False))
        finally:
            out.print()
    return conversation


@app.command(
    epilog="Examples:\n\n  axr ui                                   (tiny VLM through hf, http://127.0.0.1:7860)\n\n"
    "  axr ui --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct --base-url http://127.0.0.1:8000/v1 "
    "--rules-dir rules/\n\n  axr ui --host 0.0.0.0 --port 8080   (reachable from other machines: only if you mean it)",
)
def ui(
    backend: str = typer.Option("hf", help=BACKEND_HELP),
    model: str = typer.Option("tiny-qwen2.5-vl", help=MODEL_HELP),
    base_url: str = typer.Option(None, help="server URL for the openai backend"),
    text_only: bool = typer.Option(False, help="the model reads text only (chat without images; no verdicts)"),
    rules_dir: Path = typer.Option(None, help="a folder of rule books (YAML or AnomalyRuler .txt) to pick from"),
    subject: str = typer.Option("object", help="what the images show, e.g. 'metal bracket'"),
    host: str = typer.Option("127.0.0.1", help="interface to bind; 127.0.0.1 keeps it on this machine"),
    port: int = typer.Option(7860, help="port"),
):
    """A web page to chat with images about defects, with verdict cards (needs the `ui` extra)."""
    try:
        from axr.reasoning.ui import Engines, serve
    except ImportError:
        fail("the web UI needs Gradio: pip install 'axr[ui]'")
    books = sorted(str(p) for p in rules_dir.iterdir() if p.suffix in (".yaml", ".yml", ".txt")) if rules_dir else []

    def loader(backend_name, model_name, url, text_only_flag):
        return make_backend(backend_name, model_name, url, text_only=text_only_flag)

    engines = Engines(loader, backend, model, base_url, text_only)
    engines.get(backend, model, base_url or "")  # load the model before the page opens
    err.print(f"AXR UI on http://{host}:{port}", highlight=False)
    serve(engines, books, host, port, subject)
