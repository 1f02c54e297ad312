"""`voice-agent outbox …`: pending, failed and dead side effects; retry; deliver now."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from voice_agent.cli.context import services as build_services

outbox_app = typer.Typer(
    help="Side effects waiting for delivery (calendar, Sheets, WhatsApp, alerts).",
    no_args_is_help=True,
)


@outbox_app.command("list")
def outbox_list(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(help="pending | failed (pending with an error) | dead | done; all if unset."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Counts per status, then the newest rows (no payloads: they may hold patient data)."""
    if status not in (None, "pending", "failed", "dead", "done"):
        typer.echo("error: --status must be pending, failed, dead or done", err=True)
        raise typer.Exit(2)
    services = build_services(ctx)
    outbox = services.outbox
    counts = outbox.counts()
    typer.echo(
        f"pending {counts['pending']} (failed {counts['failed']}) · dead {counts['dead']} · "
        f"done {counts['done']}"
    )
    for row in outbox.rows(status, limit):
        error = f"  {row.last_error[:120]}" if row.last_error else ""
        due = row.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{row.id:>7}  {row.kind:9} {row.status.value:8} attempts {row.attempts:<3} "
            f"next {due}{error}"
        )
    services.close()


@outbox_app.command("retry")
def outbox_retry(
    ctx: typer.Context,
    row_id: Annotated[int | None, typer.Argument(help="A dead row's id.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead row.")] = False,
) -> None:
    """Put dead letters back in the queue with a fresh attempt budget."""
    if row_id is None and not all_dead:
        typer.echo("error: give a row id or --all-dead", err=True)
        raise typer.Exit(2)
    services = build_services(ctx)
    count = services.outbox.retry(row_id, all_dead=all_dead)
    services.close()
    if count == 0:
        typer.echo("error: no such dead row", err=True)
        raise typer.Exit(1)
    typer.echo(f"{count} row(s) queued again")


@outbox_app.command("deliver")
def outbox_deliver(ctx: typer.Context) -> None:
    """Deliver what is due now (the server does this every few seconds by itself)."""
    services = build_services(ctx)
    report = asyncio.run(services.outbox.drain())
    services.close()
    typer.echo(
        f"claimed {report.claimed}: delivered {report.delivered}, retried {report.retried}, "
        f"dead {report.dead}"
    )
