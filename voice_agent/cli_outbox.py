"""`voice-agent outbox …` (pending, failed and dead side effects; retry; deliver now) and
`voice-agent calendar reconcile`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from voice_agent.settings import ConfigurationError, load_settings

outbox_app = typer.Typer(
    help="Side effects waiting for delivery (calendar, Sheets, WhatsApp, alerts).",
    no_args_is_help=True,
)


def services_or_exit():  # type: ignore[no-untyped-def]
    from voice_agent.services import build_services

    try:
        return build_services(load_settings())
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@outbox_app.command("list")
def outbox_list(
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
    services = services_or_exit()
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
    row_id: Annotated[int | None, typer.Argument(help="A dead row's id.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead row.")] = False,
) -> None:
    """Put dead letters back in the queue with a fresh attempt budget."""
    if row_id is None and not all_dead:
        typer.echo("error: give a row id or --all-dead", err=True)
        raise typer.Exit(2)
    services = services_or_exit()
    count = services.outbox.retry(row_id, all_dead=all_dead)
    services.close()
    if count == 0:
        typer.echo("error: no such dead row", err=True)
        raise typer.Exit(1)
    typer.echo(f"{count} row(s) queued again")


@outbox_app.command("deliver")
def outbox_deliver() -> None:
    """Deliver what is due now (the server does this every few seconds by itself)."""
    services = services_or_exit()
    report = asyncio.run(services.outbox.drain())
    services.close()
    typer.echo(
        f"claimed {report.claimed}: delivered {report.delivered}, retried {report.retried}, "
        f"dead {report.dead}"
    )


def calendar_reconcile() -> None:
    """Compare our appointments with the external calendar and list the drift."""
    services = services_or_exit()
    reconciler = services.integrations.reconciler if services.integrations else None
    if reconciler is None:
        typer.echo("the local calendar has nothing to reconcile")
        services.close()
        return
    drift = asyncio.run(reconciler.run())
    for item in drift:
        typer.echo(f"{item.kind:8} {item.doctor_id:22} {item.appointment_id}  {item.detail}")
    typer.echo(f"{len(drift)} difference(s)")
    services.close()
