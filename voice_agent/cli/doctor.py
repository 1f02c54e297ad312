"""`voice-agent doctor`: check the whole set-up and say what is missing, one line each."""

from __future__ import annotations

import typer

from voice_agent.cli.context import runtime

MARKS = {"ok": "ok  ", "skip": "--  ", "fail": "FAIL"}


def doctor(ctx: typer.Context) -> None:
    """Check the database, the clinic file, OpenAI, Twilio (numbers, WhatsApp templates), each
    doctor's Google calendar, the Sheet and the clinic API; exit 1 if anything fails."""
    from voice_agent.diagnostics import Doctor

    current = runtime(ctx)
    failed = 0
    for check in Doctor(current.load_settings(), current.clock).run():
        failed += check.status == "fail"
        typer.echo(f"{MARKS[check.status]} {check.name}: {check.message}")
    if failed:
        typer.echo(f"{failed} problem(s) found", err=True)
        raise typer.Exit(1)
    typer.echo("everything configured works")
