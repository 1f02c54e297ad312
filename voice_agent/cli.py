"""The `voice-agent` command: serve, clinic, db, slots, appointments, calendar, outbox,
confirm, confirmations, calls and call."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from voice_agent.cli_calls import call, calls
from voice_agent.cli_confirm import confirm, confirmations
from voice_agent.cli_outbox import calendar_reconcile, outbox_app
from voice_agent.settings import ConfigurationError, Settings, load_settings

app = typer.Typer(help="Voice receptionist for clinics.", no_args_is_help=True)
clinic_app = typer.Typer(help="Load and show the clinic.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
calendar_app = typer.Typer(help="The local calendar.", no_args_is_help=True)
app.add_typer(clinic_app, name="clinic")
app.add_typer(db_app, name="db")
app.add_typer(calendar_app, name="calendar")
app.add_typer(outbox_app, name="outbox")
calendar_app.command("reconcile")(calendar_reconcile)
app.command("confirm")(confirm)
app.command("confirmations")(confirmations)
app.command("calls")(calls)
app.command("call")(call)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default $PORT or 8000).")] = None,
) -> None:
    """Run the receptionist (HTTP + Twilio webhooks + media streams)."""
    import uvicorn

    from voice_agent.app import create_app
    from voice_agent.voice.relay_sockets import RELAY_WS_PROTOCOL

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = _settings()
    try:
        application = create_app(settings)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        # uvicorn's websockets-sansio protocol with a fast path for the call relay's text
        # messages (voice/relay_sockets.py); the stock protocols cost 2-3x more CPU per call.
        ws=RELAY_WS_PROTOCOL,
        ws_per_message_deflate=False,  # audio frames do not compress; deflate only costs CPU
    )


@app.command()
def chat(
    phone: Annotated[str | None, typer.Option(help="The patient's phone (as if verified).")] = None,
    language: Annotated[str | None, typer.Option(help="pt-BR, ru or en (default: detect).")] = None,
    offline: Annotated[bool, typer.Option(help="Use the offline receptionist only.")] = False,
) -> None:
    """Talk to the receptionist in the terminal (one line per message, from stdin)."""
    from voice_agent.conversation.terminal import run_chat
    from voice_agent.services import build_services

    services = build_services(_settings())
    try:
        asyncio.run(run_chat(services, phone=phone, language=language, offline=offline))
    finally:
        services.close()


@clinic_app.command("load")
def clinic_load(file: Annotated[Path, typer.Argument(help="Clinic YAML file.")]) -> None:
    """Load (or re-load) the clinic file; appointments are kept."""
    from voice_agent.clinic.loader import ClinicFileError, load_clinic_file
    from voice_agent.clinic.repository import save_clinic
    from voice_agent.store.db import make_engine
    from voice_agent.store.migrate import upgrade

    settings = _settings()
    try:
        clinic = load_clinic_file(file)
    except ClinicFileError as exc:
        typer.echo(f"error: {exc.path}:", err=True)
        for problem in exc.problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(1) from None
    engine = make_engine(settings.database_url)
    upgrade(engine)
    warnings = save_clinic(engine, clinic, str(file))
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(
        f"loaded {clinic.name}: {len(clinic.doctors)} doctors, {len(clinic.services)} services, "
        f"{len(clinic.insurances)} insurances, {len(clinic.hospitals)} hospitals"
    )


@clinic_app.command("show")
def clinic_show(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the clinic in force."""
    from voice_agent.i18n import say_money
    from voice_agent.services import build_services

    services = build_services(_settings())
    clinic = services.clinic()
    if as_json:
        typer.echo(clinic.model_dump_json(indent=2))
        return
    lang = clinic.default_language
    typer.echo(f"{clinic.name} ({clinic.timezone}, {', '.join(clinic.languages)})")
    typer.echo(f"  {clinic.address} · {clinic.phone} · staff {clinic.staff_phone}")
    typer.echo("Doctors:")
    for d in clinic.doctors:
        days = ", ".join(day.value for day in d.working_hours)
        typer.echo(f"  {d.id:22} {d.name} — {', '.join(d.specialties)} — {days}")
    typer.echo("Services:")
    for s in clinic.services:
        typer.echo(
            f"  {s.id:22} {s.name(lang)} — {s.duration_minutes} min — "
            f"{say_money(s.private_price, clinic.country)}"
        )
    typer.echo("Insurances: " + ", ".join(i.name for i in clinic.insurances))
    typer.echo("Hospitals: " + ", ".join(h.name for h in clinic.hospitals))
    services.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations (safe to run repeatedly; data is kept)."""
    from voice_agent.store.db import make_engine
    from voice_agent.store.migrate import current_revisions, upgrade

    engine = make_engine(_settings().database_url)
    upgrade(engine)
    typer.echo(f"database at revision {', '.join(sorted(current_revisions(engine)))}")


@app.command()
def slots(
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
    from voice_agent.services import build_services

    services = build_services(_settings())
    clinic = services.clinic()
    found = find_service(clinic, service)
    if found is None:
        raise _fail(f"unknown service {service!r}; see `voice-agent clinic show`")
    doctor_id = None
    if doctor:
        match = find_doctor(clinic, doctor)
        if match is None:
            raise _fail(f"unknown doctor {doctor!r}")
        doctor_id = match.id
    insurance_id = None
    if insurance:
        plan = find_insurance(clinic, insurance)
        if plan is None:
            raise _fail(f"unknown insurance {insurance!r}")
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
        raise _fail(str(exc)) from None
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


@app.command()
def appointments(
    phone: Annotated[str, typer.Option(help="Patient's phone number.")],
    include_past: Annotated[bool, typer.Option("--past")] = False,
) -> None:
    """List a patient's appointments (staff use)."""
    from voice_agent.i18n import say_when
    from voice_agent.services import build_services

    services = build_services(_settings())
    clinic = services.clinic()

    async def _list() -> None:
        patient = await services.patients.find_by_phone(phone)
        if patient is None:
            raise _fail("no patient with that phone")
        rows = await services.booking.list_for_patient(
            patient.id, include_past=include_past, include_cancelled=True
        )
        for a in rows:
            when = say_when(a.start.astimezone(clinic.tz), clinic.default_language)
            typer.echo(f"{a.id}  {when}  {a.doctor_id}  {a.service_id}  {a.status.value}")

    asyncio.run(_list())
    services.close()


@calendar_app.command("block")
def calendar_block(
    doctor: Annotated[str, typer.Argument(help="Doctor id.")],
    start: Annotated[datetime, typer.Argument(help="Local start, YYYY-MM-DDTHH:MM.")],
    end: Annotated[datetime, typer.Argument(help="Local end, YYYY-MM-DDTHH:MM.")],
    reason: Annotated[str, typer.Option()] = "",
) -> None:
    """Block a doctor's time in the local calendar (no offers will fall in it)."""
    from voice_agent.calendars.local import LocalCalendar
    from voice_agent.services import build_services

    services = build_services(_settings())
    clinic = services.clinic()
    if clinic.doctor(doctor) is None:
        raise _fail(f"unknown doctor {doctor!r}")
    local_start, local_end = start.replace(tzinfo=clinic.tz), end.replace(tzinfo=clinic.tz)
    if local_end <= local_start:
        raise _fail("end must be after start")
    calendar = services.calendar
    if not isinstance(calendar, LocalCalendar):
        raise _fail("blocks are for the local calendar; block time in the external calendar")
    block_id = asyncio.run(calendar.block(doctor, local_start, local_end, reason))
    typer.echo(f"blocked {doctor} {local_start:%Y-%m-%d %H:%M}–{local_end:%H:%M} ({block_id})")
    services.close()


def main() -> None:  # pragma: no cover - console entry for `python -m voice_agent`
    app(prog_name="voice-agent")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
