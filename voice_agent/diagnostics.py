"""`voice-agent doctor`: every part of the set-up checked through the real clients, one line
each, saying what is missing and how to fix it.

Each check returns :class:`Check` results: ``ok``, ``skip`` (not configured: the line says what
would switch it on) or ``fail`` (configured and broken). Checks never raise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import Engine, text

from voice_agent.clinic.loader import load_clinic_file
from voice_agent.clinic.model import Clinic
from voice_agent.clinic.repository import load_active_clinic
from voice_agent.clock import Clock
from voice_agent.errors import ClinicFileError
from voice_agent.settings import Settings
from voice_agent.startup import clinic_file_drift, describe_startup_error, safe_database
from voice_agent.store.db import make_engine
from voice_agent.store.migrate import current_revisions, head_revisions

Status = Literal["ok", "skip", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str


def _short(error: BaseException) -> str:
    text_ = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text_[0][:200]}" if text_ else type(error).__name__


class Doctor:
    """Runs the checks in order; later checks use what earlier ones found (the clinic)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.engine: Engine | None = None
        self.clinic: Clinic | None = None

    def run(self) -> Iterator[Check]:
        steps: list[Callable[[], Iterator[Check]]] = [
            self.database,
            self.clinic_file,
            self.openai,
            self.twilio,
            self.google,
            self.clinic_api,
        ]
        for step in steps:
            try:
                yield from step()
            except Exception as error:  # a check must report, never crash the report
                yield Check(step.__name__, "fail", _short(error))
        if self.engine is not None:
            self.engine.dispose()

    # Database and clinic ----------------------------------------------------------------------

    def database(self) -> Iterator[Check]:
        url = safe_database(self.settings.database_url)
        try:
            self.engine = make_engine(self.settings.database_url)
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            current = current_revisions(self.engine)
        except Exception as error:
            self.engine = None
            line = describe_startup_error(error, self.settings) or _short(error)
            yield Check("database", "fail", line)
            return
        heads = head_revisions()
        if current != heads:
            yield Check(
                "database",
                "fail",
                f"{url} is at revision {', '.join(sorted(current)) or 'none'}, the code "
                f"expects {', '.join(sorted(heads))}: run `voice-agent db upgrade`",
            )
            return
        yield Check("database", "ok", f"{url}, schema at {', '.join(sorted(heads))}")

    def clinic_file(self) -> Iterator[Check]:
        path = self.settings.clinic_file
        try:
            in_file = load_clinic_file(path)
        except ClinicFileError as error:
            yield Check("clinic file", "fail", f"{error.path}: {'; '.join(error.problems)}")
            return
        active = load_active_clinic(self.engine) if self.engine is not None else None
        self.clinic = active or in_file
        if active is None:
            yield Check("clinic file", "ok", f"{path} is valid; it is loaded on first start")
            return
        drift = clinic_file_drift(self.settings, self.engine) if self.engine else None
        if drift:
            yield Check("clinic file", "fail", drift)
            return
        yield Check("clinic file", "ok", f"{active.name} in force ({path} is valid)")
        if self.settings.twilio_whatsapp_from and not active.doctor_whatsapp:
            yield Check(
                "alerts",
                "fail",
                "no doctor_whatsapp in the clinic file: alerts have nobody to reach",
            )

    # OpenAI -----------------------------------------------------------------------------------

    def openai(self) -> Iterator[Check]:
        key = self.settings.openai_api_key
        if key is None:
            yield Check(
                "openai", "skip", "OPENAI_API_KEY not set: the offline receptionist answers"
            )
            return
        from openai import OpenAI

        client = OpenAI(
            api_key=key.get_secret_value(),
            base_url=self.settings.openai_base_url,
            timeout=10.0,
            max_retries=0,
        )
        try:
            available = {model.id for model in client.models.list()}
        except Exception as error:
            yield Check("openai", "fail", f"OPENAI_API_KEY refused or unreachable: {_short(error)}")
            return
        wanted = [self.settings.text_model, self.settings.realtime_model]
        missing = [name for name in wanted if name not in available]
        if missing:
            yield Check(
                "openai",
                "fail",
                f"the key works but cannot use {', '.join(missing)} (VOICE_AGENT_TEXT_MODEL / "
                "VOICE_AGENT_REALTIME_MODEL)",
            )
            return
        yield Check("openai", "ok", f"key accepted; {', '.join(wanted)} available")

    # Twilio -----------------------------------------------------------------------------------

    def twilio(self) -> Iterator[Check]:
        from voice_agent.integrations.twilio_rest import make_twilio_client

        client = make_twilio_client(self.settings)
        if client is None:
            yield Check(
                "twilio",
                "skip",
                "TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN not set: no calls, WhatsApp or alerts",
            )
            return
        sid = self.settings.twilio_account_sid or ""
        try:
            account = client.api.v2010.accounts(sid).fetch()
        except Exception as error:
            yield Check(
                "twilio", "fail", f"TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN refused: {_short(error)}"
            )
            return
        yield Check("twilio", "ok", f"account {sid[:6]}… is {account.status}")
        number = self.settings.twilio_from_number
        if number:
            owned = client.incoming_phone_numbers.list(phone_number=number, limit=1)
            yield (
                Check("twilio number", "ok", f"{number} belongs to the account")
                if owned
                else Check(
                    "twilio number",
                    "fail",
                    f"VOICE_AGENT_TWILIO_FROM_NUMBER {number} is not a number of this account",
                )
            )
        if not self.settings.twilio_whatsapp_from:
            yield Check("whatsapp", "skip", "VOICE_AGENT_TWILIO_WHATSAPP_FROM not set")
            return
        for setting, content_sid in self._templates():
            try:
                client.content.v1.contents(content_sid).fetch()
            except Exception as error:
                yield Check(
                    "whatsapp template",
                    "fail",
                    f"{setting} {content_sid} does not exist in the Content API ({_short(error)})",
                )
                continue
            yield Check("whatsapp template", "ok", f"{setting} {content_sid} exists")

    def _templates(self) -> list[tuple[str, str]]:
        s = self.settings
        found = [
            (
                "VOICE_AGENT_WHATSAPP_CONFIRMATION_TEMPLATE_SID",
                s.whatsapp_confirmation_template_sid,
            ),
            ("VOICE_AGENT_WHATSAPP_ALERT_TEMPLATE_SID", s.whatsapp_alert_template_sid),
            ("VOICE_AGENT_WHATSAPP_REMINDER_TEMPLATE_SID", s.whatsapp_reminder_template_sid),
        ]
        for event, by_language in (
            ("BOOKED", s.whatsapp_booked_templates),
            ("RESCHEDULED", s.whatsapp_rescheduled_templates),
            ("CANCELLED", s.whatsapp_cancelled_templates),
        ):
            for language, sid in sorted(by_language.items()):
                found.append((f"VOICE_AGENT_WHATSAPP_{event}_TEMPLATES[{language}]", sid))
        return [(name, sid) for name, sid in found if sid]

    # Google -----------------------------------------------------------------------------------

    def google(self) -> Iterator[Check]:
        clinic = self.clinic
        uses_calendar = clinic is not None and clinic.calendar_backend == "google"
        if not uses_calendar and not self.settings.google_sheet_id:
            yield Check("google", "skip", "no Google Calendar backend and no Sheet configured")
            return
        from voice_agent.google.api import GoogleApis

        apis = GoogleApis(self.settings)
        if uses_calendar and clinic is not None:
            calendars = apis.calendar_list()
            for doctor in clinic.doctors:
                if not doctor.calendar_id:
                    yield Check(
                        "google calendar",
                        "fail",
                        f"{doctor.name} has no calendar_id in the clinic file",
                    )
                    continue
                try:
                    apis.execute(
                        functools.partial(calendars.get, calendarId=doctor.calendar_id),
                        what="calendarList get",
                        retry=False,
                    )
                except Exception as error:
                    yield Check(
                        "google calendar",
                        "fail",
                        f"{doctor.name}'s calendar {doctor.calendar_id} is not shared with the "
                        f"service account ({_short(error)}): share it with “make changes to "
                        "events”",
                    )
                    continue
                yield Check("google calendar", "ok", f"{doctor.name}: {doctor.calendar_id}")
        sheet = self.settings.google_sheet_id
        if not sheet:
            yield Check("google sheet", "skip", "VOICE_AGENT_GOOGLE_SHEET_ID not set")
            return
        tab = self.settings.google_sheet_tab
        values = apis.sheets_values()
        try:
            apis.execute(
                lambda: values.get(spreadsheetId=sheet, range=f"'{tab}'!A1:A1" if tab else "A1:A1"),
                what="sheets read",
                retry=False,
            )
        except Exception as error:
            yield Check(
                "google sheet",
                "fail",
                f"VOICE_AGENT_GOOGLE_SHEET_ID {sheet} cannot be read ({_short(error)}): share the "
                "sheet with the service account as editor",
            )
            return
        yield Check("google sheet", "ok", f"{sheet} is reachable")

    # Clinic API -------------------------------------------------------------------------------

    def clinic_api(self) -> Iterator[Check]:
        clinic = self.clinic
        if clinic is None or clinic.calendar_backend != "clinic_api":
            return
        if not self.settings.clinic_api_url:
            yield Check("clinic api", "fail", "VOICE_AGENT_CLINIC_API_URL is not set")
            return
        import asyncio

        from voice_agent.calendars.clinic_api import ClinicApiCalendar

        calendar = ClinicApiCalendar.from_settings(self.settings, lambda: clinic)
        start = self.clock.now()
        try:
            asyncio.run(
                calendar.list_events(clinic.doctors[0].id, start, start + timedelta(days=1))
            )
        except Exception as error:
            yield Check(
                "clinic api",
                "fail",
                f"{self.settings.clinic_api_url} did not answer a listing ({_short(error)}): "
                "check the URL, VOICE_AGENT_CLINIC_API_AUTH_HEADER and the mapping file",
            )
            return
        finally:
            calendar.close()
        yield Check("clinic api", "ok", f"{self.settings.clinic_api_url} answers")
