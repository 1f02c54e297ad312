"""`voice-agent staff …`: console accounts (the first admin is created here)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from voice_agent.cli.context import exit_with, runtime
from voice_agent.cli.context import services as build_services
from voice_agent.console.accounts import (
    MIN_PASSWORD_LENGTH,
    AccountError,
    StaffAccounts,
    password_hasher,
)
from voice_agent.store.staff_tables import StaffRole

if TYPE_CHECKING:
    from voice_agent.services import Services

staff_app = typer.Typer(help="Staff accounts of the web console.", no_args_is_help=True)

MESSAGES = {
    "invalid_email": "not an e-mail address",
    "doctor_id_required": "a doctor account needs --doctor ID (see `voice-agent clinic show`)",
    "password_too_short": f"the password needs at least {MIN_PASSWORD_LENGTH} characters",
    "email_taken": "an account with this e-mail already exists",
    "unknown_account": "no account with this e-mail",
}


def _accounts(ctx: typer.Context, services: Services) -> StaffAccounts:
    hasher = password_hasher(services.settings.staff_password_profile)
    return StaffAccounts(services.engine, runtime(ctx).clock, hasher)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@staff_app.command("add")
def staff_add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The login e-mail.")],
    role: Annotated[StaffRole, typer.Option(help="admin | receptionist | doctor")],
    doctor: Annotated[
        str | None, typer.Option("--doctor", help="The clinic's doctor id (role doctor).")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="pt-BR | ru | en; the clinic's language if unset.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line.")
    ] = False,
) -> None:
    """Create a console account; the password is asked twice (or read from stdin)."""
    services = build_services(ctx)
    try:
        if doctor is not None and doctor not in {d.id for d in services.clinic().doctors}:
            exit_with(f"unknown doctor {doctor!r} (see `voice-agent clinic show`)", code=2)
        if language is not None and language not in services.clinic().languages:
            exit_with(f"language must be one of {', '.join(services.clinic().languages)}", code=2)
        password = _read_password(password_stdin)
        try:
            account = _accounts(ctx, services).add(
                email, password, role, doctor_id=doctor, language=language
            )
        except AccountError as exc:
            exit_with(MESSAGES.get(exc.code, exc.code))
        typer.echo(f"added {account.email} ({account.role})")
    finally:
        services.close()


@staff_app.command("list")
def staff_list(ctx: typer.Context) -> None:
    """Every account: e-mail, role, doctor, language, active."""
    services = build_services(ctx)
    try:
        for account in _accounts(ctx, services).list():
            state = "active" if account.active else "disabled"
            typer.echo(
                f"{account.email:40} {account.role:12} {account.doctor_id or '-':12} "
                f"{account.language or '-':6} {state}"
            )
    finally:
        services.close()


@staff_app.command("password")
def staff_password(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a new password (a forgotten one); every session of the account is signed out."""
    services = build_services(ctx)
    try:
        password = _read_password(password_stdin)
        try:
            _accounts(ctx, services).set_password(email, password)
        except AccountError as exc:
            exit_with(MESSAGES.get(exc.code, exc.code))
        typer.echo("password changed; the account's sessions are signed out")
    finally:
        services.close()
