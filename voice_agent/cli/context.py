"""What every command gets from one place: the settings, the services and the clock.

Commands never read the environment or the system clock themselves; they ask the `CliRuntime`
of the current invocation. The installed command runs on the default one (settings from the
environment, the system clock); a test hands in its own through Click's ``obj``
(``CliRunner().invoke(app, args, obj=CliRuntime(clock=FixedClock(...)))``), so a command that
books, plans or lists "from tomorrow on" is as date-proof as the rest of the suite. Commands take
the ``typer.Context`` explicitly (typer's public API; recent typer versions carry their own click,
so click's global context is not theirs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import typer

from voice_agent.clock import Clock, SystemClock
from voice_agent.errors import ConfigurationError
from voice_agent.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from voice_agent.services import Services


@dataclass
class CliRuntime:
    """The clock and the settings a command runs with."""

    clock: Clock = field(default_factory=SystemClock)
    settings: Settings | None = None
    """Fixed settings; ``None`` reads them from the environment when first asked."""

    def load_settings(self) -> Settings:
        if self.settings is None:
            try:
                self.settings = load_settings()
            except ConfigurationError as exc:
                exit_with(str(exc), code=2)
        return self.settings

    def build_services(self) -> Services:
        from voice_agent.services import build_services

        current = self.load_settings()
        with startup_errors(current):  # a clinic file that differs is a warning line there
            return build_services(current, clock=self.clock)


@contextmanager
def startup_errors(current: Settings | None) -> Iterator[None]:
    """A bad setting or an unreachable database/backend: one line naming what to fix, exit 2."""
    from voice_agent.startup import describe_startup_error

    try:
        yield
    except Exception as exc:
        line = describe_startup_error(exc, current)
        if line is None:
            raise
        exit_with(line, code=2)


def runtime(ctx: typer.Context) -> CliRuntime:
    """This invocation's runtime (the root callback puts one there if the caller gave none)."""
    found = ctx.find_object(CliRuntime)
    if found is None:
        found = ctx.find_root().obj = CliRuntime()
    return found


def settings(ctx: typer.Context) -> Settings:
    return runtime(ctx).load_settings()


def services(ctx: typer.Context) -> Services:
    return runtime(ctx).build_services()


def engine(ctx: typer.Context) -> Engine:
    """An engine on the configured database with its encryption keys (no migration, no clinic):
    for commands that must work on a database the app would not start on yet."""
    from voice_agent.crypto.binding import configure_keys
    from voice_agent.store.db import make_engine

    current = settings(ctx)
    made = make_engine(current.database_url)
    try:
        configure_keys(made, current)
    except ConfigurationError as exc:
        exit_with(str(exc), code=2)
    return made


def exit_with(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and leave with ``code`` (1: refused, 2: bad usage)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
