"""`voice-agent chat`: the receptionist in a terminal, one line per message (stdin to stdout).

At an interactive terminal the OpenAI reply is printed as it is written; piped input gets one
whole reply per message.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import TextIO

from voice_agent.conversation.engine import ConversationService
from voice_agent.services import Services


async def run_chat(
    services: Services,
    *,
    phone: str | None,
    language: str | None,
    offline: bool = False,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stream: bool | None = None,
) -> None:
    # Resolved per call, not at import: a default bound to the sys.stdout of the moment the
    # module was imported writes into a dead stream once that stream is replaced (CliRunner).
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    conversations = ConversationService(services, use_llm=False if offline else None)
    session = f"cli-{uuid.uuid4().hex[:12]}"
    interactive = stdin.isatty()
    streaming = interactive if stream is None else stream
    if interactive:
        stdout.write("Type a message (Ctrl-D to quit).\n")
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            break
        text = line.rstrip("\n")
        printer = _Printer(stdout) if streaming else None
        reply = await conversations.handle(
            "cli", session, text, phone=phone, language=language, listener=printer
        )  # a number typed at the terminal is not verified by any carrier
        if printer is not None and printer.shown == reply.text:
            stdout.write("\n\n")  # already on screen
        else:
            stdout.write(reply.text + "\n\n")
        stdout.flush()


class _Printer:
    """A ``TurnListener`` that prints the reply as it is written."""

    def __init__(self, stdout: TextIO) -> None:
        self.stdout = stdout
        self.shown = ""

    async def text(self, delta: str) -> None:
        self.shown += delta
        self.stdout.write(delta)
        self.stdout.flush()

    async def working(self, tool: str) -> None:
        return  # the terminal shows nothing while a tool runs

    async def discard(self) -> None:
        if self.shown:
            self.stdout.write(" …\n")  # cut off: the offline receptionist's answer follows
        self.shown = ""
