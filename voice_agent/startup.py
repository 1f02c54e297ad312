"""Start-up problems said in one line that names what to fix, never a traceback.

``describe_startup_error`` turns what building the services can raise (a bad setting, a database
that cannot be reached, a missing or invalid clinic file, a backend that needs a setting) into
that line; ``voice-agent serve`` and every CLI command go through it (``cli/context.py``).
``clinic_file_drift`` tells at start when the configured clinic file differs from the clinic in
force, since the file is only read into an empty database.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from voice_agent.clinic.loader import load_clinic_file
from voice_agent.clinic.repository import load_active_clinic
from voice_agent.errors import ClinicFileError, ConfigurationError
from voice_agent.settings import DEFAULT_CLINIC_FILE, Settings

logger = logging.getLogger(__name__)


def safe_database(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def describe_startup_error(error: BaseException, settings: Settings | None) -> str | None:
    """One line naming what to fix, or None for an error we do not recognise (a bug)."""
    database = safe_database(settings.database_url) if settings else "the database"
    if isinstance(error, ConfigurationError):
        return str(error)
    if isinstance(error, ClinicFileError):
        return (
            f"clinic file {error.path}: {'; '.join(error.problems)} "
            "(fix the file or VOICE_AGENT_CLINIC_FILE)"
        )
    if isinstance(error, ArgumentError):
        return f"VOICE_AGENT_DATABASE_URL is not a database URL ({error})"
    if isinstance(error, OperationalError | DBAPIError):
        reason = str(getattr(error, "orig", error)).strip().splitlines()
        first = reason[0] if reason else type(error).__name__
        return (
            f"cannot reach the database {database}: {first} "
            "(check VOICE_AGENT_DATABASE_URL and that the server runs)"
        )
    if isinstance(error, ModuleNotFoundError):
        return f"a database driver or package is missing: {error.name} (pip install it)"
    if isinstance(error, PermissionError | IsADirectoryError | FileNotFoundError):
        return f"cannot use {error.filename}: {error.strerror} (check the path and permissions)"
    return None


def clinic_file_drift(settings: Settings, engine: Engine) -> str | None:
    """A warning when the configured clinic file says something else than the clinic in force."""
    path = Path(settings.clinic_file)
    if path == DEFAULT_CLINIC_FILE:
        return None  # the sample, used only to start an empty database
    active = load_active_clinic(engine)
    if active is None:
        return None
    try:
        in_file = load_clinic_file(path)
    except ClinicFileError as error:
        return f"clinic file {error.path}: {'; '.join(error.problems)}"
    if in_file.model_dump() == active.model_dump():
        return None
    return (
        f"the clinic file {path} differs from the clinic in force ({active.name}); "
        f"run `voice-agent clinic load {path}` to use it"
    )
