"""`voice-agent backup FILE` and `voice-agent restore FILE` (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voice_agent.cli.context import exit_with, settings, startup_errors


def backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The backup file to write (created 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Back up the database (SQLite backup API, or pg_dump) while the app may keep running."""
    from voice_agent.backup import BackupError
    from voice_agent.backup import backup as run_backup

    current = settings(ctx)
    try:
        done = run_backup(current.database_url, file, overwrite=force)
    except BackupError as error:
        exit_with(str(error))
    typer.echo(f"backed up {done}")


def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file written by `voice-agent backup`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the database with a backup (stop the server first), then migrate it to this
    version's schema."""
    from voice_agent.backup import BackupError
    from voice_agent.backup import restore as run_restore
    from voice_agent.store.db import make_engine
    from voice_agent.store.migrate import current_revisions, upgrade

    current = settings(ctx)
    if not yes and not typer.confirm(
        "This replaces every appointment and patient in the database with the backup. Go on?"
    ):
        raise typer.Exit(1)
    try:
        done = run_restore(current.database_url, file)
    except BackupError as error:
        exit_with(str(error))
    with startup_errors(current):
        engine = make_engine(current.database_url)
        upgrade(engine)
        revisions = ", ".join(sorted(current_revisions(engine)))
        engine.dispose()
    typer.echo(f"restored {done}; schema at {revisions}")


def alerts(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
) -> None:
    """The latest alerts to the staff, with their text (the log only says that one was sent)."""
    import json

    from voice_agent.cli.context import services as build_services

    built = build_services(ctx)
    zone = built.clinic().tz
    rows = built.outbox.rows(limit=limit, kind="alert")
    built.close()
    if not rows:
        typer.echo("no alerts")
    for row in rows:
        payload = json.loads(row.payload)
        when = row.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        typer.echo(f"{when}  {row.status.value:7} {payload.get('kind', '?')}: {payload['message']}")
