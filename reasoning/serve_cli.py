"""`axr models | serve | chat | ui`: the models that run here, a vLLM server, and chatting with images in the
terminal or the browser. Mounted on the root command beside the reasoning commands of `cli.py`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from axr.reasoning.backends import BACKENDS, parse_model_spec
from axr.reasoning.console import BACKEND_HELP, MODEL_HELP, err, fail, make_backend
from axr.reasoning.vllm_server import CPU_SERVER_ENV, VLLMServer

app = typer.Typer()


@app.command(epilog="Examples:\n\n  axr models\n\n  axr models --prepare   (export SmolLM2, build the tiny VLM)")
def models(prepare: bool = typer.Option(False, help="build the offline models into the cache now")):
    """Backends that can run here, and the models available offline."""
    import importlib.util

    from axr.reasoning import local_models
    from axr.reasoning.vllm_server import vllm_python

    table = Table("backend", "available", "what")
    needs = {"hf": "transformers", "vllm": "vllm", "openai": "httpx", "probe": "numpy"}
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
    compiled: bool = typer.Option(
        True, "--compiled/--eager", help="CPU: compile at start (40-90 s more; scores 6-15% faster)"
    ),
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
        extra_args=server_args(cpu, max_model_len, compiled),
        log_path=log,
        ready_timeout_s=900,
        env={**CPU_SERVER_ENV, "HF_HUB_OFFLINE": "1"} if cpu else None,
    )
    err.print(f"starting vLLM on {'CPU' if cpu else 'GPU'} (log: {log}) ...", highlight=False)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a plain `kill` or a closed terminal stops vLLM too
        signal.signal(sig, lambda *_: sys.exit(0))
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


@app.command(
    epilog="Examples:\n\n  axr chat part.png --reference good1.png --reference good2.png --rules rules.yaml\n\n"
    "  axr chat part.png --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct --base-url http://127.0.0.1:8000/v1\n\n"
    "  axr chat --load session.json",
)
def chat(
    images: list[Path] = typer.Argument(None, help="query image(s)"),
    reference: list[Path] = typer.Option(None, "--reference", help="a normal reference image; repeat for several"),
    rules: Path = typer.Option(None, help="a RuleBook YAML or an AnomalyRuler rule file"),
    backend_name: str = typer.Option("hf", "--backend", help=BACKEND_HELP),
    model: str = typer.Option("tiny-qwen2.5-vl", help=MODEL_HELP),
    base_url: str = typer.Option(None, help="server URL for the openai backend"),
    load: Path = typer.Option(None, help="continue a saved session"),
    subject: str = typer.Option("object", help="what the images show, e.g. 'metal bracket'"),
    text_only: bool = typer.Option(False, help="the model reads text only (no images are sent; no verdicts)"),
):
    """Chat about images in the terminal: ask questions, ask for a verdict, add images, save the session."""
    from axr.reasoning.chat import Chat, ChatError, Session
    from axr.reasoning.chat_terminal import chat_loop

    backend = make_backend(backend_name, model, base_url, text_only=text_only)
    try:
        session = Session.load(load) if load else Session()
        conversation = Chat(backend, session, domain=subject)
        for path in images or []:
            conversation.add_image(str(path))
        for path in reference or []:
            if warning := conversation.add_reference(str(path)):
                err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        if rules:
            conversation.set_rules(str(rules))
    except ChatError as error:
        fail(str(error))
    chat_loop(conversation, Console(), err)


@app.command(
    epilog="Examples:\n\n  axr ui                                   (tiny VLM through hf, http://127.0.0.1:7860)\n\n"
    "  axr ui --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct --base-url http://127.0.0.1:8000/v1 "
    "--rules-dir rules/\n\n  axr ui --host 0.0.0.0 --port 8080   (reachable from other machines: only if you mean it)",
)
def ui(
    backend_name: str = typer.Option("hf", "--backend", help=BACKEND_HELP),
    model: str = typer.Option("tiny-qwen2.5-vl", help=MODEL_HELP),
    base_url: str = typer.Option(None, help="server URL for the openai backend"),
    text_only: bool = typer.Option(False, help="the model reads text only (chat without images; no verdicts)"),
    rules_dir: Path = typer.Option(None, help="a folder of rule books (YAML or AnomalyRuler .txt) to pick from"),
    subject: str = typer.Option("object", help="what the images show, e.g. 'metal bracket'"),
    host: str = typer.Option("127.0.0.1", help="interface to bind; 127.0.0.1 keeps it on this machine"),
    port: int = typer.Option(7860, help="port"),
    choices: list[str] = typer.Option(
        None, "--choice", help="another model the page may pick, BACKEND:MODEL[@BASE_URL]; repeat (none other)"
    ),
):
    """A web page to chat with images about defects, with verdict cards (needs the `ui` extra)."""
    try:
        from axr.reasoning.ui import LoadedBackends, serve
    except ImportError:
        fail("the web UI needs Gradio: pip install 'axr[ui]'")
    books = sorted(str(p) for p in rules_dir.iterdir() if p.suffix in (".yaml", ".yml", ".txt")) if rules_dir else []

    def load(name, model_name, url, text_only_flag):
        return make_backend(name, model_name, url, text_only=text_only_flag)

    try:
        extra = [parse_model_spec(text, "--choice") for text in choices or []]
    except ValueError as error:
        fail(str(error))
    loaded = LoadedBackends(load, [(backend_name, model, base_url), *extra], text_only)
    loaded.get(loaded.default)  # load the first model before the page opens
    err.print(f"AXR UI on http://{host}:{port}", highlight=False)
    serve(loaded, books, host, port, subject)
