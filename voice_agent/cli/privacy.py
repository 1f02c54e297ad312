"""`voice-agent keys generate | rotate` and `voice-agent privacy purge`: the keys that encrypt
patient data at rest, and the clinic's retention limits."""

from __future__ import annotations

from typing import Annotated

import typer

from voice_agent.cli.context import services as build_services

keys_app = typer.Typer(help="Keys that encrypt patient data at rest.", no_args_is_help=True)
privacy_app = typer.Typer(help="Retention of patient data.", no_args_is_help=True)


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new encryption key and a new look-up key (for the environment, not for a file)."""
    from voice_agent.crypto.keys import generate_encryption_key, generate_lookup_key

    typer.echo(f"VOICE_AGENT_ENCRYPTION_KEYS={generate_encryption_key()}")
    typer.echo(f"VOICE_AGENT_LOOKUP_KEY={generate_lookup_key()}")


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per transaction.")] = 500,
) -> None:
    """Re-encrypt every encrypted field with the newest key (the first of
    VOICE_AGENT_ENCRYPTION_KEYS) and recompute phone hashes with the look-up key.

    Safe to stop and run again: values already under the newest key are skipped."""
    from voice_agent.privacy.rotation import rotate_keys

    services = build_services(ctx)
    try:
        report = rotate_keys(services.engine, batch_size=batch_size)
    finally:
        services.close()
    for table, count in sorted(report.values_reencrypted.items()):
        typer.echo(f"{table:<20} {count:>8} values re-encrypted")
    typer.echo(
        f"re-encrypted {report.total_reencrypted} values in {report.rows_read} rows; "
        f"{report.phone_hashes_updated} phone hashes updated"
    )


@privacy_app.command("purge")
def privacy_purge(ctx: typer.Context) -> None:
    """Delete now what is past the clinic's retention (the app also does it periodically)."""
    from voice_agent.privacy.retention import purge

    services = build_services(ctx)
    try:
        report = purge(services.engine, services.clinic().retention, services.clock.now())
    finally:
        services.close()
    for kind, count in report.model_dump().items():
        typer.echo(f"{kind.replace('_', ' '):<22} {count:>8}")
