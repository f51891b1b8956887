"""`axr ui`: a Gradio page to chat with images about defects (extra `ui`).

Upload a query image and normal references, pick a rule book and one of the models the server was started
with, chat, and ask for a verdict card with the box drawn on the image. Binds 127.0.0.1 unless told
otherwise. The models (backend, model, server URL) are fixed at launch: the page picks among them and can
name no other, so no page can make the server load a folder or send its API key to a URL of its choosing.
Uploads arrive as files (Gradio does not decode them), are checked by `axr.reasoning.media.load_image` like
any image (format, size, decompression bombs), and live only in a temporary folder made for this server and
removed when it stops. Every bad input shows one line in the status area and the session goes on.
"""

from __future__ import annotations

import html
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from axr.reasoning.chat import Chat, ChatError, Session, boxed_query, check_image, read_rules, size_warning
from axr.reasoning.media import MediaError, load_image

MAX_UPLOAD = "25mb"


class LoadedBackends:
    """The models this server may use, fixed at launch as {label: (backend, model, base_url)}; each is loaded
    once, when first picked, and shared by every browser session. Any other label is refused."""

    def __init__(self, make_backend, allowed: list[tuple[str, str, str | None]], text_only: bool):
        self.make_backend, self.text_only = make_backend, text_only
        self.allowed = {label(*choice): choice for choice in allowed}
        self.default = next(iter(self.allowed))
        self._loaded: dict[str, object] = {}

    def get(self, choice: str):
        if choice not in self.allowed:
            raise ChatError(f"{choice!r} is not one of the models this UI was started with")
        if choice not in self._loaded:
            self._loaded[choice] = self.make_backend(*self.allowed[choice], self.text_only)
        return self._loaded[choice]

    def close(self) -> None:
        for backend in self._loaded.values():
            backend.close()
        self._loaded.clear()


def label(backend: str, model: str, base_url: str | None) -> str:
    """How the page shows a model: backend:model, and the server for openai (without credentials)."""
    from axr.reasoning.backends.openai_server import public_url

    return f"{backend}:{model}" + (f" @ {public_url(base_url)}" if backend == "openai" and base_url else "")


def _path(upload) -> str | None:
    if upload is None:
        return None
    return upload if isinstance(upload, str) else getattr(upload, "name", None)


def verdict_card(verdict) -> str:
    rationale = verdict.rationale
    rows = [
        ("verdict", verdict.verdict),
        ("score", f"{verdict.score:.2f}" if verdict.score is not None else "-"),
        ("type", verdict.anomaly_type or "-"),
        ("severity", verdict.severity),
        ("what", rationale.what),
        ("why", rationale.why),
        ("how", rationale.how),
        ("rules", ", ".join(verdict.rules_matched) or "-"),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<div class='verdict-card {html.escape(verdict.verdict)}'><table>{body}</table></div>"


def build_app(loaded: LoadedBackends, rule_books: list[str], subject: str = "object"):
    import gradio as gr

    def chat_for(session: Session | None, choice: str) -> Chat:
        try:
            chosen = loaded.get(choice)
        except ChatError:
            raise
        except Exception as error:  # the backend's own message, whatever the library raised
            raise ChatError(f"cannot load {choice}: {str(error).splitlines()[0]}") from None
        return Chat(chosen, replace(session) if session else Session(), domain=subject)

    def set_inputs(query, references, rules, session):
        """A new query/references/rules: checked first. A bad file is named in the status, removed from its
        upload box, and leaves the session as it was."""
        fresh = Session(history=session.history if session else [])
        keep = gr.update()
        try:
            if _path(query):
                check_image(_path(query))
                fresh.images.append(_path(query))
        except ChatError as error:
            return session, keep, f"**Not used:** {html.escape(str(error))}", None, keep
        try:
            for reference in references or []:
                check_image(_path(reference))
                fresh.references.append(_path(reference))
            if rules and rules != "(none)":
                read_rules(rules)
                fresh.rules = rules
        except ChatError as error:
            return session, keep, f"**Not used:** {html.escape(str(error))}", keep, None
        warnings = [w for r in fresh.references if fresh.images and (w := size_warning(r, fresh.images[-1]))]
        counts = f"{len(fresh.images)} query image, {len(fresh.references)} reference(s)"
        preview = load_image(fresh.images[-1]) if fresh.images else None
        return fresh, preview, "; ".join([counts, *warnings]), keep, keep

    def send(message, history, session, choice):
        """Streams: the answer grows in the chatbot as the model writes it."""
        pieces: queue.Queue = queue.Queue()
        outcome: dict = {}

        def work() -> None:
            try:
                conversation = chat_for(session, choice)
                outcome["answer"] = conversation.ask(message, on_piece=pieces.put)
                outcome["session"] = conversation.session
            except (ChatError, MediaError) as error:
                outcome["error"] = str(error)
            pieces.put(None)

        threading.Thread(target=work, daemon=True).start()
        text, user_turn = "", {"role": "user", "content": message}
        while (piece := pieces.get()) is not None:
            text += piece
            yield [*history, user_turn, {"role": "assistant", "content": text}], session, "", "writing..."
        if "error" in outcome:
            yield history, session, message, f"**{html.escape(outcome['error'])}**"
            return
        final = [*history, user_turn, {"role": "assistant", "content": outcome["answer"]}]
        yield final, outcome["session"], "", "answered"

    def give_verdict(session, choice):
        try:
            conversation = chat_for(session, choice)
            verdict = conversation.verdict()
        except (ChatError, MediaError) as error:
            return session, gr.update(), "", f"**{html.escape(str(error))}**"
        boxed = boxed_query(conversation.session.images[-1], verdict)
        return conversation.session, boxed, verdict_card(verdict), "verdict ready"

    with gr.Blocks(title="AXR: chat with images about defects") as app:
        session = gr.State(None)
        gr.Markdown("## AXR: chat with images about defects")
        with gr.Row():
            with gr.Column(scale=1):
                query = gr.File(label="Query image", file_types=["image"], elem_id="query")
                references = gr.File(
                    label="Normal references", file_count="multiple", file_types=["image"], elem_id="references"
                )
                rules = gr.Dropdown(["(none)", *rule_books], value="(none)", label="Rule book", elem_id="rules")
                model = gr.Dropdown(list(loaded.allowed), value=loaded.default, label="Model", elem_id="model")
                preview = gr.Image(label="Image (box of the last verdict)", interactive=False, elem_id="preview")
                verdict_button = gr.Button("Verdict", elem_id="verdict-button")
                card = gr.HTML(elem_id="verdict-card")
            with gr.Column(scale=1):
                chatbot = gr.Chatbot(label="Conversation", elem_id="chatbot", height=420)
                message = gr.Textbox(label="Message", placeholder="What is wrong with this part?", elem_id="message")
                send_button = gr.Button("Send", variant="primary", elem_id="send")
                status = gr.Markdown(elem_id="status")
        # upload/clear, not change: clearing a bad file from code must not run the check again
        for trigger in (query.upload, query.clear, references.upload, references.clear, rules.change):
            trigger(set_inputs, [query, references, rules, session], [session, preview, status, query, references])
        inputs = [message, chatbot, session, model]
        send_button.click(send, inputs, [chatbot, session, message, status])
        message.submit(send, inputs, [chatbot, session, message, status])
        verdict_button.click(give_verdict, [session, model], [session, preview, card, status])
    return app


def serve(
    loaded: LoadedBackends, rule_books: list[str], host: str = "127.0.0.1", port: int = 7860, subject: str = "object"
):
    upload_dir = tempfile.mkdtemp(prefix="axr-ui-")
    os.environ["GRADIO_TEMP_DIR"] = upload_dir  # uploads land here and nowhere else
    app = build_app(loaded, [str(Path(p)) for p in rule_books], subject)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain `kill` cleans up too
    print(f"uploads in {upload_dir} (removed on exit)", flush=True)
    try:
        app.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD, show_error=False)
    finally:
        loaded.close()
        shutil.rmtree(upload_dir, ignore_errors=True)
