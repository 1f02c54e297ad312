"""`voice-agent clinic load FILE | show` and `voice-agent db upgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voice_agent.cli.context import engine as keyed_engine
from voice_agent.cli.context import services, settings, startup_errors

clinic_app = typer.Typer(help="Load and show the clinic.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@clinic_app.command("load")
def clinic_load(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="Clinic YAML file.")]
) -> None:
    """Load (or re-load) the clinic file; appointments are kept."""
    from voice_agent.clinic.loader import load_clinic_file
    from voice_agent.clinic.repository import save_clinic
    from voice_agent.errors import ClinicFileError
    from voice_agent.store.migrate import upgrade

    current = settings(ctx)
    try:
        clinic = load_clinic_file(file)
    except ClinicFileError as exc:
        typer.echo(f"error: {exc.path}:", err=True)
        for problem in exc.problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(1) from None
    with startup_errors(current):
        engine = keyed_engine(ctx)  # with its keys: migrations encrypt rows written before 0009
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
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the clinic in force."""
    from voice_agent.i18n import say_money

    built = services(ctx)
    clinic = built.clinic()
    built.close()
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


@clinic_app.command("export")
def clinic_export(
    ctx: typer.Context,
    version_id: Annotated[
        int | None, typer.Option("--version", help="A version id (default: the one in force).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """The clinic data as a YAML file that `clinic load` reads back (edits made in the console
    included)."""
    from voice_agent.clinic.versions import export_yaml, version

    built = services(ctx)
    try:
        found = version(built.engine, version_id)
    finally:
        built.close()
    if found is None:
        typer.echo(f"error: no clinic version {version_id}", err=True)
        raise typer.Exit(1)
    text = export_yaml(found[1])
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"version {found[0].id} written to {output}")


@clinic_app.command("versions")
def clinic_versions(
    ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, max=1000)] = 20
) -> None:
    """Every saved version, newest first: when, by whom (a staff account) or from which file,
    and what changed."""
    from voice_agent.clinic.versions import versions
    from voice_agent.console.lookups import staff_emails

    built = services(ctx)
    try:
        tz = built.clinic().tz
        rows = versions(built.engine, limit)
        emails = staff_emails(built.engine, [row.author_id for row in rows])
    finally:
        built.close()
    for row in rows:
        when = row.loaded_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        who = emails.get(row.author_id, row.source) if row.author_id else row.source
        typer.echo(f"{row.id:>5}  {when}  {who}")
        for line in (row.summary or "").splitlines():
            typer.echo(f"         {line}")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply schema migrations (safe to run repeatedly; data is kept)."""
    from voice_agent.store.migrate import current_revisions, upgrade

    current = settings(ctx)
    with startup_errors(current):
        engine = keyed_engine(ctx)  # with its keys: migrations encrypt rows written before 0009
        upgrade(engine)
    typer.echo(f"database at revision {', '.join(sorted(current_revisions(engine)))}")
