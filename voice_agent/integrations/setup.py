"""Wiring of the integrations: outbox, handlers, alerter, calendar backend, interaction hook.

Everything is switched on by settings; with none, the outbox only carries alerts (written to the
log) and the calendar is the local one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from voice_agent.alerts import Alerter, StaffTexts
from voice_agent.calendars.base import CalendarBackend
from voice_agent.calendars.local import LocalCalendar
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.errors import ConfigurationError
from voice_agent.integrations.alerting import OutboxAlerter, dead_letter_text
from voice_agent.integrations.calendar_sync import CalendarSyncHandler, Reconciler
from voice_agent.integrations.outbox import Outbox
from voice_agent.interactions import InteractionLog
from voice_agent.settings import Settings
from voice_agent.store.outbox_tables import OutboxRow
from voice_agent.store.tables import Interaction, InteractionKind

logger = logging.getLogger(__name__)

PATIENT_EVENTS = {
    InteractionKind.booking: "booked",
    InteractionKind.reschedule: "rescheduled",
    InteractionKind.cancellation: "cancelled",
}
"""The patient is told of these in writing (WhatsApp or SMS)."""

CALENDAR_KINDS = (
    InteractionKind.booking,
    InteractionKind.reschedule,
    InteractionKind.cancellation,
)


@dataclass
class InteractionEffects:
    """The interaction hook: enqueues, in the interaction's own transaction, a Sheets row for
    every interaction, a calendar write and a message to the patient (WhatsApp or SMS) for
    bookings, reschedules and cancellations."""

    outbox: Outbox
    clinic: Callable[[], Clinic]
    sheets: bool = False
    mask_phone: bool = True
    calendar: bool = False
    calendar_creates: bool = True
    whatsapp: bool = False
    texts: StaffTexts | None = None

    def __call__(self, session: Session, interaction: Interaction) -> None:
        if self.sheets:
            from voice_agent.integrations.sheets import interaction_row

            row = interaction_row(
                session, interaction, self.clinic(), mask=self.mask_phone, texts=self.texts
            )
            self.outbox.enqueue_in(session, "sheets", f"sheets:{interaction.id}", {"row": row})
        appointment_id = interaction.appointment_id
        if appointment_id is None:
            return
        kind = interaction.kind
        wanted = kind != InteractionKind.booking or self.calendar_creates
        if self.calendar and kind in CALENDAR_KINDS and wanted:
            payload: dict[str, str | None] = {"op": str(kind), "appointment_id": appointment_id}
            if kind == InteractionKind.reschedule:
                payload["from_doctor_id"] = _previous_doctor(interaction.details)
            self.outbox.enqueue_in(
                session,
                "calendar",
                f"calendar:{interaction.id}",
                payload,
                group_key=appointment_id,
            )
        event = PATIENT_EVENTS.get(kind)
        if self.whatsapp and event is not None:
            key = "confirm" if event == "booked" else event
            self.outbox.enqueue_in(
                session,
                "whatsapp",
                f"whatsapp:{key}:{interaction.id}",
                {
                    "appointment_id": appointment_id,
                    "event": event,
                    "interaction_id": interaction.id,
                },
            )  # not grouped: a calendar outage must not hold the patient's message


def _previous_doctor(details: str) -> str | None:
    try:
        before = json.loads(details or "{}").get("from") or {}
    except ValueError:
        return None
    return before.get("doctor_id") if isinstance(before, dict) else None


@dataclass
class Integrations:
    outbox: Outbox
    alerter: Alerter
    calendar: CalendarBackend
    reconciler: Reconciler | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def build_integrations(
    settings: Settings,
    engine: Engine,
    clinic: Callable[[], Clinic],
    clock: Clock,
    interactions: InteractionLog,
    *,
    alerter: Alerter | None = None,
    calendar: CalendarBackend | None = None,
) -> Integrations:
    outbox = Outbox(engine, clock, max_attempts=settings.outbox_max_attempts)
    outbox_alerter = OutboxAlerter(
        engine,
        outbox,
        clock,
        dedup_minutes=settings.alert_dedup_minutes,
        max_per_hour=settings.alert_max_per_hour,
    )
    alerter = alerter or outbox_alerter
    _dead_letters_alert(outbox, alerter, clinic, StaffTexts(settings.prompts_dir))

    sender = patient_sender = None
    if settings.twilio_enabled:
        from voice_agent.integrations.twilio_rest import make_twilio_client
        from voice_agent.integrations.whatsapp import STATUS_PATH, WhatsAppSender

        client = make_twilio_client(settings)
        callback = f"{settings.public_url}{STATUS_PATH}" if settings.public_url else None
        if client is not None and settings.twilio_whatsapp_from:
            sender = WhatsAppSender(client, settings.twilio_whatsapp_from, status_callback=callback)
        if settings.patient_message_channel == "whatsapp":
            patient_sender = sender
        elif client is not None and settings.twilio_from_number:
            patient_sender = WhatsAppSender(
                client, settings.twilio_from_number, whatsapp=False, status_callback=callback
            )
    from voice_agent.integrations.whatsapp import AlertHandler, PatientMessageHandler

    outbox.register(
        AlertHandler(
            sender,
            clinic,
            template_sid=settings.whatsapp_alert_template_sid,
            texts=StaffTexts(settings.prompts_dir),
        )
    )
    texts = StaffTexts(settings.prompts_dir)
    effects = InteractionEffects(outbox, clinic, mask_phone=settings.sheets_mask_phone, texts=texts)

    google = None
    if settings.google_sheet_id or clinic().calendar_backend == "google":
        from voice_agent.google.api import GoogleApis

        google = GoogleApis(settings)
    if settings.google_sheet_id and google is not None:
        from voice_agent.integrations.sheets import SheetsHandler, localized_header

        header = localized_header(texts, clinic().default_language)
        outbox.register(
            SheetsHandler(
                google, settings.google_sheet_id, settings.google_sheet_tab, header=header
            )
        )
        effects.sheets = True
    if patient_sender is not None and settings.whatsapp_confirmations:
        booked = dict(settings.whatsapp_booked_templates)
        if settings.whatsapp_confirmation_template_sid:
            booked.setdefault("*", settings.whatsapp_confirmation_template_sid)
        outbox.register(
            PatientMessageHandler(
                engine,
                patient_sender,
                clinic,
                clock,
                templates={
                    "booked": booked,
                    "rescheduled": dict(settings.whatsapp_rescheduled_templates),
                    "cancelled": dict(settings.whatsapp_cancelled_templates),
                },
                prompts_dir=settings.prompts_dir,
            )
        )
        effects.whatsapp = True

    async def integration_down(message: str) -> None:
        language = clinic().default_language
        text = texts.say(
            language, "integration", service=texts.say(language, "system_google"), detail=message
        )
        await alerter.alert("integration", text)

    if calendar is None:
        backend = clinic().calendar_backend
        if backend == "google" and google is not None:
            from voice_agent.calendars.google import GoogleCalendar

            calendar = GoogleCalendar(
                google,
                clinic,
                send_updates=settings.google_send_updates,
                cancel_mode=settings.google_cancel_mode,
                title=settings.google_event_title,
                cache_seconds=settings.google_freebusy_cache_seconds,
                on_unavailable=integration_down,
            )
        elif backend == "clinic_api":
            from voice_agent.calendars.clinic_api import ClinicApiCalendar

            if not settings.clinic_api_url:
                raise ConfigurationError(
                    "VOICE_AGENT_CLINIC_API_URL: required when calendar_backend is clinic_api"
                )
            calendar = ClinicApiCalendar.from_settings(settings, clinic)
        else:
            calendar = LocalCalendar(engine)
    reconciler = None
    if not isinstance(calendar, LocalCalendar):
        outbox.register(CalendarSyncHandler(engine, calendar, clinic, texts))
        # A confirming backend (the clinic's API) has every booking, move and cancellation
        # already: BookingService recorded them only after it accepted them.
        effects.calendar = not getattr(calendar, "confirms_synchronously", False)
        reconciler = Reconciler(engine, calendar, clinic, clock, alert=alerter.alert, texts=texts)
    interactions.add_hook(effects)
    return Integrations(
        outbox=outbox,
        alerter=alerter,
        calendar=calendar,
        reconciler=reconciler,
        extras={"google": google, "whatsapp": sender, "effects": effects},
    )


def _dead_letters_alert(
    outbox: Outbox, alerter: Alerter, clinic: Callable[[], Clinic], texts: StaffTexts
) -> None:
    """A dead letter tells the staff what it means for which appointment (one alert each)."""

    def hook(session: Session, row: OutboxRow) -> None:
        if row.kind == "alert" or not isinstance(alerter, OutboxAlerter):
            logger.error("dead letter: outbox row %s (%s)", row.id, row.kind)
            return
        message = dead_letter_text(session, row, clinic(), texts)
        alerter.enqueue_in(session, "dead_letter", message, dedup_key=f"row{row.id}")

    outbox.on_dead_letter(hook)
