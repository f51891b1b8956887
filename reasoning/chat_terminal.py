"""The terminal chat loop behind `axr chat`: read a line, carry out a /command or ask the model, print."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from axr.reasoning.chat import Chat, ChatError, Session

CHAT_HELP = """commands:
  /image PATH     add a query image          /ref PATH     add a normal reference image
  /rules PATH     use a rule book            /verdict      a structured verdict on the last image
  /save PATH      save the session (JSON)    /load PATH    load a saved session
  /help           this list                  /quit         leave (also Ctrl-D)
anything else is a question to the model"""


def chat_loop(conversation: Chat, out: Console, errors: Console, read=input) -> None:
    """Until /quit, Ctrl-D or Ctrl-C; a ChatError (a bad path, a failed request) is shown and the loop goes on."""
    out.print(
        f"AXR chat: {len(conversation.session.images)} image(s), {len(conversation.session.references)} "
        "reference(s). /help for commands.",
        highlight=False,
    )
    while True:
        try:
            line = read("you> ")
        except (EOFError, KeyboardInterrupt):
            break
        if line.strip() in ("/quit", "/exit"):
            break
        try:
            conversation = chat_turn(conversation, line, out)
        except ChatError as error:
            errors.print(f"[yellow]{escape(str(error))}[/]", highlight=False)


def chat_turn(conversation: Chat, line: str, out: Console) -> Chat:
    """Carry out one line of the terminal chat; returns the conversation (a new one after /load)."""
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
        verdict = conversation.verdict()
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
