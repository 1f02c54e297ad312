"""`voice-agent confirm APPOINTMENT --via call|whatsapp` and `voice-agent confirmations`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from voice_agent.cli.context import services as build_services

if TYPE_CHECKING:
    from voice_agent.confirmations.runner import ConfirmationRunner
    from voice_agent.services import Services

STATUSES = ("pending", "running", "waiting", "done", "failed", "cancelled")


def _runner(ctx: typer.Context) -> tuple[Services, ConfirmationRunner]:
    """The runner and the services it runs on (the command closes them when done)."""
    from voice_agent.confirmations.runner import ConfirmationRunner
    from voice_agent.integrations.twilio_rest import make_twilio_client

    services = build_services(ctx)
    return services, ConfirmationRunner(services, make_twilio_client(services.settings))


def confirm(
    ctx: typer.Context,
    appointment: Annotated[str, typer.Argument(help="The appointment id.")],
    via: Annotated[str, typer.Option(help="call | whatsapp")] = "whatsapp",
) -> None:
    """Ask a patient to confirm now, by WhatsApp or by phone call (contact hours not applied).

    A call needs Twilio, VOICE_AGENT_PUBLIC_URL and the server running to take its callbacks.
    """
    if via not in ("call", "whatsapp"):
        typer.echo("error: --via must be call or whatsapp", err=True)
        raise typer.Exit(2)
    services, runner = _runner(ctx)
    try:
        step_id, outcome = asyncio.run(runner.trigger(appointment, via))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        services.close()
    typer.echo(f"step {step_id}: {via} {outcome}")
    if outcome not in ("sent", "placed"):
        raise typer.Exit(1)


def confirmations(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="pending | running | waiting | done | failed | cancelled")
    ] = None,
    appointment: Annotated[str | None, typer.Option(help="Only this appointment's steps.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    run: Annotated[bool, typer.Option(help="Run the due steps now, then list.")] = False,
    plan_missing: Annotated[
        bool,
        typer.Option(
            help="Plan steps for future appointments that have none (also done at start)."
        ),
    ] = False,
) -> None:
    """Confirmation steps (due, under way, done and failed), newest due first; no patient data."""
    if status is not None and status not in STATUSES:
        typer.echo(f"error: --status must be one of {', '.join(STATUSES)}", err=True)
        raise typer.Exit(2)
    services, runner = _runner(ctx)
    try:
        if plan_missing:
            planned = asyncio.run(runner.plan_missing())
            typer.echo(f"planned confirmations for {planned} appointment(s)")
        if run:
            for step_id, outcome in asyncio.run(runner.run_due(limit=100)):
                typer.echo(f"ran step {step_id}: {outcome}")
        steps = runner.store.listing(status=status, appointment_id=appointment, limit=limit)
        counts = runner.store.counts()
        tz = services.clinic().tz
    finally:
        services.close()
    typer.echo("  ".join(f"{name}: {counts.get(name, 0)}" for name in STATUSES))
    for step in steps:
        due = step.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        typer.echo(
            f"{step.id:>6}  {step.appointment_id}  {step.via:<8}  {step.status:<9}  "
            f"due {due}  attempts {step.attempts}  {step.outcome or '-'}"
        )
