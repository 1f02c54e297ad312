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

from voice_agent.alerts import Alerter
from voice_agent.calendars.base import CalendarBackend
from voice_agent.calendars.local import LocalCalendar
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.integrations.alerting import OutboxAlerter
from voice_agent.integrations.calendar_sync import CalendarSyncHandler, Reconciler
from voice_agent.integrations.outbox import Outbox
from voice_agent.interactions import InteractionLog
from voice_agent.settings import ConfigurationError, Settings
from voice_agent.store.outbox_tables import OutboxRow
from voice_agent.store.tables import Interaction, InteractionKind

logger = logging.getLogger(__name__)

CALENDAR_KINDS = (
    InteractionKind.booking,
    InteractionKind.reschedule,
    InteractionKind.cancellation,
)


@dataclass
class InteractionEffects:
    """The interaction hook: enqueues, in the interaction's own transaction, a Sheets row for
    every interaction, a calendar write for bookings/reschedules/cancellations, and a WhatsApp
    confirmation for bookings."""

    outbox: Outbox
    clinic: Callable[[], Clinic]
    sheets: bool = False
    mask_phone: bool = True
    calendar: bool = False
    calendar_creates: bool = True
    whatsapp: bool = False

    def __call__(self, session: Session, interaction: Interaction) -> None:
        if self.sheets:
            from voice_agent.integrations.sheets import interaction_row

            row = interaction_row(session, interaction, self.clinic(), mask=self.mask_phone)
            self.outbox.enqueue_in(session, "sheets", f"sheets:{interaction.id}", {"row": row})
        appointment_id = interaction.appointment_id
        if appointment_id is None:
            return
        kind = interaction.kind
        wanted = kind != InteractionKind.booking or self.calendar_creates
        if self.calendar and kind in CALENDAR_KINDS and wanted:
            payload = {"op": str(kind), "appointment_id": appointment_id}
            if kind == InteractionKind.reschedule:
                payload["from_doctor_id"] = _previous_doctor(interaction.details)
            self.outbox.enqueue_in(
                session,
                "calendar",
                f"calendar:{interaction.id}",
                payload,
                group_key=appointment_id,
            )
        if self.whatsapp and kind == InteractionKind.booking:
            self.outbox.enqueue_in(
                session,
                "whatsapp",
                f"whatsapp:confirm:{interaction.id}",
                {"appointment_id": appointment_id},
            )  # not grouped: a calendar outage must not hold the patient's confirmation


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
    confirmer: Any = None
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
    _dead_letters_alert(outbox, alerter)

    sender = None
    if settings.twilio_enabled and settings.twilio_whatsapp_from:
        from voice_agent.integrations.twilio_rest import make_twilio_client
        from voice_agent.integrations.whatsapp import WhatsAppSender

        client = make_twilio_client(settings)
        if client is not None:
            sender = WhatsAppSender(client, settings.twilio_whatsapp_from)
    from voice_agent.integrations.whatsapp import AlertHandler, ConfirmationHandler

    outbox.register(AlertHandler(sender, clinic, template_sid=settings.whatsapp_alert_template_sid))
    effects = InteractionEffects(outbox, clinic, mask_phone=settings.sheets_mask_phone)

    google = None
    if settings.google_sheet_id or clinic().calendar_backend == "google":
        from voice_agent.integrations.google_api import GoogleApis

        google = GoogleApis(settings)
    if settings.google_sheet_id and google is not None:
        from voice_agent.integrations.sheets import SheetsHandler

        outbox.register(SheetsHandler(google, settings.google_sheet_id, settings.google_sheet_tab))
        effects.sheets = True
    if sender is not None and settings.whatsapp_confirmations:
        outbox.register(
            ConfirmationHandler(
                engine,
                sender,
                clinic,
                clock,
                template_sid=settings.whatsapp_confirmation_template_sid,
            )
        )
        effects.whatsapp = True

    async def integration_down(message: str) -> None:
        await alerter.alert("integration", message)

    confirmer = None
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
            from voice_agent.calendars.clinic_api import ClinicApiCalendar, ClinicApiConfirmer

            if not settings.clinic_api_url:
                raise ConfigurationError(
                    "VOICE_AGENT_CLINIC_API_URL: required when calendar_backend is clinic_api"
                )
            calendar = ClinicApiCalendar.from_settings(settings, clinic)
            confirmer = ClinicApiConfirmer(calendar, clinic, alert=_sync_alert(alerter))
        else:
            calendar = LocalCalendar(engine)
    reconciler = None
    if not isinstance(calendar, LocalCalendar):
        outbox.register(CalendarSyncHandler(engine, calendar, clinic))
        effects.calendar = True
        effects.calendar_creates = not getattr(calendar, "confirms_synchronously", False)
        reconciler = Reconciler(engine, calendar, clinic, clock, alert=alerter.alert)
    interactions.add_hook(effects)
    return Integrations(
        outbox=outbox,
        alerter=alerter,
        calendar=calendar,
        reconciler=reconciler,
        confirmer=confirmer,
        extras={"google": google, "whatsapp": sender, "effects": effects},
    )


def _dead_letters_alert(outbox: Outbox, alerter: Alerter) -> None:
    def hook(session: Session, row: OutboxRow) -> None:
        message = (
            f"A {row.kind} delivery failed {row.attempts} times and was put aside "
            f"(outbox row {row.id}); see `voice-agent outbox list --status dead`."
        )
        if row.kind == "alert" or not isinstance(alerter, OutboxAlerter):
            logger.error("dead letter: %s", message)
            return
        alerter.enqueue_in(session, "dead_letter", message)

    outbox.on_dead_letter(hook)


def _sync_alert(alerter: Alerter) -> Callable[[str, str], None]:
    """A synchronous alert for code running in worker threads (never raises)."""

    def alert(kind: str, message: str) -> None:
        if isinstance(alerter, OutboxAlerter):
            alerter.alert_sync(kind, message)
            return
        logger.warning("ALERT %s: %s", kind, message)
        sent = getattr(alerter, "sent", None)
        if isinstance(sent, list):
            sent.append((kind, message))

    return alert
