"""`voice-agent slots`, `voice-agent appointments` and `voice-agent calendar block | reconcile`:
the agenda as staff query and shape it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer

from voice_agent.cli.context import exit_with
from voice_agent.cli.context import services as build_services

calendar_app = typer.Typer(help="The local calendar.", no_args_is_help=True)


def slots(
    ctx: typer.Context,
    service: Annotated[str, typer.Option(help="Service id, name or specialty.")],
    doctor: Annotated[str | None, typer.Option(help="Doctor id or name.")] = None,
    from_: Annotated[
        datetime | None,
        typer.Option("--from", help="First day (YYYY-MM-DD).", formats=["%Y-%m-%d"]),
    ] = None,
    to: Annotated[
        datetime | None, typer.Option(help="Last day (YYYY-MM-DD).", formats=["%Y-%m-%d"])
    ] = None,
    period: Annotated[list[str] | None, typer.Option(help="morning/afternoon/evening.")] = None,
    insurance: Annotated[str | None, typer.Option(help="Health plan.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=50)] = 5,
    language: Annotated[str | None, typer.Option(help="pt-BR, ru or en.")] = None,
) -> None:
    """Print ranked offers for a request (nothing is held)."""
    from voice_agent.clinic.lookup import find_doctor, find_insurance, find_service
    from voice_agent.i18n import say_when
    from voice_agent.scheduling.preferences import Preferences

    services = build_services(ctx)
    clinic = services.clinic()
    found = find_service(clinic, service)
    if found is None:
        exit_with(f"unknown service {service!r}; see `voice-agent clinic show`")
    doctor_id = None
    if doctor:
        match = find_doctor(clinic, doctor)
        if match is None:
            exit_with(f"unknown doctor {doctor!r}")
        doctor_id = match.id
    insurance_id = None
    if insurance:
        plan = find_insurance(clinic, insurance)
        if plan is None:
            exit_with(f"unknown insurance {insurance!r}")
        insurance_id = plan.id
    try:
        prefs = Preferences(
            date_from=from_.date() if from_ else None,
            date_to=to.date() if to else None,
            periods=period or [],
            doctor_id=doctor_id,
            insurance_id=insurance_id,
        )
    except ValueError as exc:
        exit_with(str(exc))
    offers = asyncio.run(
        services.booking.rank(
            found.id, prefs, now=services.clock.now(), limit=limit, language=language
        )
    )
    lang = language or clinic.default_language
    typer.echo(f"{found.name(lang)} — {len(offers)} offers")
    for index, offer in enumerate(offers, 1):
        d = clinic.doctors_by_id[offer.slot.doctor_id]
        when = say_when(offer.slot.start.astimezone(clinic.tz), lang)
        reasons = ", ".join(r.code for r in offer.reasons)
        typer.echo(f"{index}. {when} — {d.name} (score {offer.score:.2f}: {reasons})")
    services.close()


def appointments(
    ctx: typer.Context,
    phone: Annotated[str, typer.Option(help="Patient's phone number.")],
    include_past: Annotated[bool, typer.Option("--past")] = False,
) -> None:
    """List a patient's appointments (staff use)."""
    from voice_agent.i18n import say_when

    services = build_services(ctx)
    clinic = services.clinic()

    async def _list() -> None:
        patient = await services.patients.find_by_phone(phone)
        if patient is None:
            exit_with("no patient with that phone")
        rows = await services.booking.list_for_patient(
            patient.id, include_past=include_past, include_cancelled=True
        )
        for a in rows:
            when = say_when(a.start.astimezone(clinic.tz), clinic.default_language)
            # Booked for a child or relative: who attends, the patient being the contact.
            attendee = f"  attendee_name={a.attendee_name}" if a.attendee_name else ""
            typer.echo(f"{a.id}  {when}  {a.doctor_id}  {a.service_id}  {a.status.value}{attendee}")

    asyncio.run(_list())
    services.close()


@calendar_app.command("block")
def calendar_block(
    ctx: typer.Context,
    doctor: Annotated[str, typer.Argument(help="Doctor id.")],
    start: Annotated[datetime, typer.Argument(help="Local start, YYYY-MM-DDTHH:MM.")],
    end: Annotated[datetime, typer.Argument(help="Local end, YYYY-MM-DDTHH:MM.")],
    reason: Annotated[str, typer.Option()] = "",
) -> None:
    """Block a doctor's time in the local calendar (no offers will fall in it)."""
    from voice_agent.calendars.local import LocalCalendar

    services = build_services(ctx)
    clinic = services.clinic()
    if clinic.doctor(doctor) is None:
        exit_with(f"unknown doctor {doctor!r}")
    local_start, local_end = start.replace(tzinfo=clinic.tz), end.replace(tzinfo=clinic.tz)
    if local_end <= local_start:
        exit_with("end must be after start")
    calendar = services.calendar
    if not isinstance(calendar, LocalCalendar):
        exit_with("blocks are for the local calendar; block time in the external calendar")
    block_id = asyncio.run(calendar.block(doctor, local_start, local_end, reason))
    typer.echo(f"blocked {doctor} {local_start:%Y-%m-%d %H:%M}–{local_end:%H:%M} ({block_id})")
    services.close()


@calendar_app.command("reconcile")
def calendar_reconcile(ctx: typer.Context) -> None:
    """Compare our appointments with the external calendar and list the drift."""
    services = build_services(ctx)
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
