"""`voice-agent agenda [--date D] [--doctor X]` (a day's appointments with their no-show risk)
and `voice-agent agenda mark APPOINTMENT_ID attended|no-show` (what the risk model learns from)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated

import typer

from voice_agent.cli.context import exit_with, runtime
from voice_agent.cli.context import services as build_services

agenda_app = typer.Typer(
    help="A day's appointments with their no-show risk; mark attended or no-show.",
    invoke_without_command=True,
)


@agenda_app.callback()
def agenda(
    ctx: typer.Context,
    day: Annotated[
        datetime | None,
        typer.Option("--date", help="The day (YYYY-MM-DD); today if unset.", formats=["%Y-%m-%d"]),
    ] = None,
    doctor: Annotated[str | None, typer.Option(help="Only this doctor (id).")] = None,
) -> None:
    """List the day's appointments (no patient data) with the learned no-show risk."""
    if ctx.invoked_subcommand is not None:
        return
    from sqlalchemy import select
    from sqlmodel import col

    from voice_agent.store.db import transaction
    from voice_agent.store.tables import Appointment, AppointmentStatus

    services = build_services(ctx)
    clinic = services.clinic()
    now = runtime(ctx).clock.now()
    local_day = day.date() if day else now.astimezone(clinic.tz).date()
    start = datetime.combine(local_day, time(0), tzinfo=clinic.tz)
    end = start + timedelta(days=1)
    query = (
        select(Appointment)
        .where(
            col(Appointment.start) >= start,
            col(Appointment.start) < end,
            col(Appointment.status) != AppointmentStatus.cancelled,
        )
        .order_by(col(Appointment.start), col(Appointment.doctor_id))
    )
    if doctor:
        query = query.where(col(Appointment.doctor_id) == doctor)
    with transaction(services.engine) as session:
        rows = list(session.execute(query).scalars())
    assert services.learning is not None
    risks = services.learning.no_show_risk([a.id for a in rows], now)
    typer.echo(f"{local_day:%Y-%m-%d}: {len(rows)} appointment(s)")
    for a in rows:
        risk = risks.get(a.id)
        shown = f"{risk * 100:3.0f}%" if risk is not None else "   —"
        typer.echo(
            f"{a.start.astimezone(clinic.tz):%H:%M}  {a.doctor_id:22} {a.service_id:20} "
            f"{a.status.value:10} no-show risk {shown}  {a.id}"
        )
    if rows and all(r is None for r in risks.values()):
        typer.echo("(no no-show model in use yet: `voice-agent ranking status`)")
    services.close()


@agenda_app.command("mark")
def mark(
    ctx: typer.Context,
    appointment_id: Annotated[str, typer.Argument(help="The appointment's id.")],
    outcome: Annotated[str, typer.Argument(help="attended | no-show")],
) -> None:
    """Mark an appointment that has started as attended or no-show."""
    from voice_agent.learning.attendance import AttendanceError, mark_attendance

    services = build_services(ctx)
    try:
        appointment = mark_attendance(
            services.engine, appointment_id, outcome, runtime(ctx).clock.now()
        )
    except AttendanceError as exc:
        services.close()
        exit_with(str(exc))
    typer.echo(f"{appointment.id}: {appointment.status.value}")
    services.close()
