"""`voice-agent chat`: the receptionist in a terminal, one line per message (stdin to stdout)."""

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
) -> None:
    # Resolved per call, not at import: a default bound to the sys.stdout of the moment the
    # module was imported writes into a dead stream once that stream is replaced (CliRunner).
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    conversations = ConversationService(services, use_llm=False if offline else None)
    session = f"cli-{uuid.uuid4().hex[:12]}"
    interactive = stdin.isatty()
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
        reply = await conversations.handle(
            "cli", session, text, phone=phone, language=language
        )  # a number typed at the terminal is not verified by any carrier
        stdout.write(reply.text + "\n\n")
        stdout.flush()
