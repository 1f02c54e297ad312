"""`voice-agent serve` (the receptionist over HTTP) and `voice-agent chat` (in the terminal)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from voice_agent.cli.context import exit_with, runtime, settings, startup_errors
from voice_agent.settings import chat_token_problem


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default $PORT or 8000).")] = None,
) -> None:
    """Run the receptionist (HTTP + Twilio webhooks + media streams)."""
    import uvicorn

    from voice_agent.app import create_app
    from voice_agent.logging_setup import configure_logging, uvicorn_log_config
    from voice_agent.voice.relay_sockets import uvicorn_websocket_options

    configure_logging(logging.INFO)
    current = settings(ctx)
    bind = host or current.host
    problem = chat_token_problem(bind, current)
    if problem is not None:
        exit_with(problem)
    with startup_errors(current):
        application = create_app(current)
    uvicorn.run(
        application,
        host=bind,
        port=port or current.port,
        log_level="info",
        log_config=uvicorn_log_config(),  # access lines without query strings, patient data masked
        # scope["client"] stays the socket's peer: the loopback-only chat and the rate limits
        # must not believe an X-Forwarded-For header (FORWARDED_ALLOW_IPS is ignored).
        proxy_headers=False,
        # uvicorn's websockets-sansio protocol with a fast path for the call relay's text
        # messages (voice/relay_sockets/), or the stock one with VOICE_AGENT_RELAY_FAST_PATH=
        # false; a 64 KiB message limit (Twilio frames are under 1 KB), no deflate.
        **uvicorn_websocket_options(current.relay_fast_path),
    )


def chat(
    ctx: typer.Context,
    phone: Annotated[
        str | None,
        typer.Option(
            help="The patient's phone, as typed: existing appointments need a code or the "
            "birth date."
        ),
    ] = None,
    language: Annotated[str | None, typer.Option(help="pt-BR, ru or en (default: detect).")] = None,
    offline: Annotated[bool, typer.Option(help="Use the offline receptionist only.")] = False,
) -> None:
    """Talk to the receptionist in the terminal (one line per message, from stdin)."""
    from voice_agent.conversation.terminal import run_chat

    services = runtime(ctx).build_services()
    try:
        asyncio.run(run_chat(services, phone=phone, language=language, offline=offline))
    finally:
        services.close()
