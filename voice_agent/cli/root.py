"""The `voice-agent` command: one Typer root; each command group lives in its own module and gets
its settings, services and clock from `cli.context`."""

from __future__ import annotations

from typing import Annotated

import typer

from voice_agent import __version__
from voice_agent.cli.agenda import appointments, calendar_app, slots
from voice_agent.cli.agenda_day import agenda_app
from voice_agent.cli.calls import call, calls
from voice_agent.cli.clinic import clinic_app, db_app
from voice_agent.cli.confirmations import confirm, confirmations
from voice_agent.cli.context import CliRuntime
from voice_agent.cli.doctor import doctor
from voice_agent.cli.flagged import flagged
from voice_agent.cli.ops import alerts, backup, restore
from voice_agent.cli.outbox import outbox_app
from voice_agent.cli.patient import patient_app
from voice_agent.cli.privacy import keys_app, privacy_app
from voice_agent.cli.ranking import ranking_app
from voice_agent.cli.server import chat, serve
from voice_agent.cli.staff import staff_app
from voice_agent.logging_setup import install_log_privacy

app = typer.Typer(help="Voice receptionist for clinics.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"voice-agent {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Voice receptionist for clinics."""
    install_log_privacy()  # every command's log lines: patient data masked, third parties quiet
    if ctx.obj is None:  # the installed command; tests pass their own (a fixed clock)
        ctx.obj = CliRuntime()


app.command()(serve)
app.command()(chat)
app.add_typer(clinic_app, name="clinic")
app.add_typer(db_app, name="db")
app.command()(slots)
app.command()(appointments)
app.add_typer(calendar_app, name="calendar")
app.add_typer(outbox_app, name="outbox")
app.command("confirm")(confirm)
app.command("confirmations")(confirmations)
app.command("calls")(calls)
app.command("call")(call)
app.add_typer(patient_app, name="patient")
app.add_typer(privacy_app, name="privacy")
app.add_typer(keys_app, name="keys")
app.command("doctor")(doctor)
app.command("backup")(backup)
app.command("restore")(restore)
app.command("alerts")(alerts)
app.command("flagged")(flagged)
app.add_typer(ranking_app, name="ranking")
app.add_typer(agenda_app, name="agenda")
app.add_typer(staff_app, name="staff")


def main() -> None:  # pragma: no cover - console entry for `python -m voice_agent`
    app(prog_name="voice-agent")
