"""`voice-agent calls` (recent calls and how they ended) and `voice-agent call SID` (one call's
transcript, tools and errors). Staff tools: the list masks callers; the timeline is the record."""

from __future__ import annotations

import json
from datetime import datetime, time, tzinfo
from typing import Annotated

import typer

from voice_agent.cli.context import services as build_services
from voice_agent.patients.service import mask_phone
from voice_agent.store.tables import CallEvent, CallOutcome, CallRecord
from voice_agent.voice.call_records import CallFilter, call_timeline, outcome_counts, recent_calls

OUTCOMES = tuple(o.value for o in CallOutcome)
SHOWN_CHARS = 240  # a tool's arguments or output beyond this are cut in the timeline


def calls(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="From this day (YYYY-MM-DD, clinic time); default: all.")
    ] = None,
    outcome: Annotated[str | None, typer.Option(help=" | ".join(OUTCOMES))] = None,
    flagged: Annotated[bool, typer.Option(help="Only calls flagged (emergencies).")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Recent calls, newest first, with counts per outcome; callers' numbers are masked."""
    if outcome is not None and outcome not in OUTCOMES:
        typer.echo(f"error: --outcome must be one of {', '.join(OUTCOMES)}", err=True)
        raise typer.Exit(2)
    services = build_services(ctx)
    try:
        tz = services.clinic().tz
        start = None
        if since is not None:
            try:
                day = datetime.strptime(since, "%Y-%m-%d").date()
            except ValueError:
                typer.echo("error: --since must be a date like 2026-11-23", err=True)
                raise typer.Exit(2) from None
            start = datetime.combine(day, time(0), tzinfo=tz)
        where = CallFilter(start, CallOutcome(outcome) if outcome else None, flagged)
        counts = outcome_counts(services.engine, where)
        rows = recent_calls(services.engine, where, limit)
    finally:
        services.close()
    typer.echo("  ".join(f"{name}: {counts[name]}" for name in OUTCOMES if counts.get(name)))
    for call in rows:
        typer.echo(_call_line(call, tz))


def call(
    ctx: typer.Context, call_sid: Annotated[str, typer.Argument(help="The call's CallSid.")]
) -> None:
    """One call: who, when, how it ended, then every transcript turn, tool call and error."""
    services = build_services(ctx)
    try:
        tz = services.clinic().tz
        found = call_timeline(services.engine, call_sid)
    finally:
        services.close()
    if found is None:
        typer.echo(f"error: no call {call_sid}", err=True)
        raise typer.Exit(1)
    record, events = found
    typer.echo(_call_line(record, tz))
    if record.error:
        typer.echo(f"error: {record.error}")
    if record.transfer_summary:
        typer.echo(f"transfer summary: {record.transfer_summary}")
    for event in events:
        offset = max(0, int((event.at - record.started_at).total_seconds()))
        typer.echo(f"{offset // 60:>3}:{offset % 60:02d}  {event.kind:<12}  {_content(event)}")


def _call_line(call: CallRecord, tz: tzinfo) -> str:
    started = call.started_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    duration = "--:--"
    if call.ended_at is not None:
        seconds = int((call.ended_at - call.started_at).total_seconds())
        duration = f"{seconds // 60}:{seconds % 60:02d}"
    kind = call.direction if call.mode == "reception" else f"{call.direction}/{call.mode}"
    flag = "  FLAGGED" if call.flagged else ""
    return (
        f"{started}  {duration:>6}  {kind:<21}  {mask_phone(call.caller):<16}  "
        f"{call.language or '-':<5}  {call.outcome.value:<14}  {call.call_sid}{flag}"
    )


def _content(event: CallEvent) -> str:
    if event.kind != "tool":
        return event.content
    try:
        tool = json.loads(event.content)
    except ValueError:
        return event.content
    given = {k: v for k, v in (tool.get("arguments") or {}).items() if v not in (None, [], "")}
    arguments = json.dumps(given, ensure_ascii=False)[:SHOWN_CHARS]
    output = json.dumps(tool.get("output", {}), ensure_ascii=False)[:SHOWN_CHARS]
    status = "ok" if tool.get("ok") else "failed"
    return f"{tool.get('name')}({arguments}) {status}: {output}"
