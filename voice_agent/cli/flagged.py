"""`voice-agent flagged`: conversations where the red-flag guard heard a possible emergency
(WhatsApp, SMS, web chat, terminal), newest first. Flagged calls: `voice-agent calls --flagged`."""

from __future__ import annotations

from typing import Annotated

import typer

from voice_agent.cli.context import services as build_services
from voice_agent.conversation.state import ConversationStore
from voice_agent.patients.service import mask_phone


def flagged(ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """Flagged conversations: when, channel, the patient's number (masked), the conversation."""
    services = build_services(ctx)
    try:
        tz = services.clinic().tz
        rows = ConversationStore(services.engine).flagged(limit)
    finally:
        services.close()
    if not rows:
        typer.echo("no flagged conversations")
    for row in rows:
        when = row.flagged_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if row.flagged_at else "-"
        phone = mask_phone(row.phone) if row.phone else "-"
        typer.echo(f"{when}  {row.channel:<9}  {phone:<16}  {row.conversation_id}")
