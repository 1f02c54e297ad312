"""`voice-agent patient export PHONE | erase PHONE`: a person's requests about their own data
(LGPD / 152-FZ). Export prints everything held as JSON; erase needs `--yes` or a confirmation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from voice_agent.cli.context import exit_with
from voice_agent.cli.context import services as build_services

patient_app = typer.Typer(
    help="A patient's data: export it, or erase it on request.", no_args_is_help=True
)

PhoneArgument = Annotated[str, typer.Argument(help="The patient's phone, in any usual form.")]


@patient_app.command("export")
def patient_export(
    ctx: typer.Context,
    phone: PhoneArgument,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (mode 0600).")
    ] = None,
) -> None:
    """Everything held about the person with this phone, as JSON."""
    from voice_agent.errors import InvalidPatientData
    from voice_agent.patients.service import normalize_phone
    from voice_agent.privacy.subject import SubjectNotFound, export_subject

    services = build_services(ctx)
    try:
        e164 = normalize_phone(phone, services.patients.region)
        data = export_subject(services.engine, e164, services.clock.now())
    except InvalidPatientData as exc:
        exit_with(str(exc), code=2)
    except SubjectNotFound:
        exit_with("no patient has that phone number")
    finally:
        services.close()
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    if output is None:
        typer.echo(text)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    typer.echo(f"written to {output}")


@patient_app.command("erase")
def patient_erase(
    ctx: typer.Context,
    phone: PhoneArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase the person's personal data and transcripts; appointments stay, anonymised."""
    from voice_agent.errors import InvalidPatientData
    from voice_agent.patients.service import mask_phone, normalize_phone
    from voice_agent.privacy.subject import SubjectNotFound, erase_subject

    services = build_services(ctx)
    try:
        e164 = normalize_phone(phone, services.patients.region)
        if not yes and not typer.confirm(
            f"Erase every personal data of {mask_phone(e164)}? This cannot be undone."
        ):
            exit_with("nothing erased")
        removed = erase_subject(services.engine, services.interactions, e164, services.clock.now())
    except InvalidPatientData as exc:
        exit_with(str(exc), code=2)
    except SubjectNotFound:
        exit_with("no patient has that phone number")
    except typer.Abort:
        exit_with("nothing erased")
    finally:
        services.close()
    typer.echo("erased: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in removed.items()))
