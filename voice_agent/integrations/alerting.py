"""Alerts through the outbox: deduplicated and rate-limited, so one outage is one message.

- Dedup: one alert per *kind* per window (``alert_dedup_minutes``); the row key carries the
  window, so two processes alerting at once still make one row. An alert about one patient
  (hand-over, callback) carries a ``dedup_key`` (its call or conversation): one per patient.
- Rate limit: at most ``alert_max_per_hour`` alerts per hour; a patient's request (hand-over,
  callback, emergency) is never dropped by it (someone is waiting for a call back).
- Never raises into the caller's path: a failure to enqueue is logged.
An alert's text may name a patient and their number (the staff need them), so only its kind is
logged, never its text.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from voice_agent.alerts import StaffTexts
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.i18n import language_or_default, say_when
from voice_agent.integrations.outbox import Outbox
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow
from voice_agent.store.tables import Appointment, Interaction, Patient

logger = logging.getLogger(__name__)

PATIENT_REQUESTS = frozenset({"handoff", "handoff_question", "callback", "transfer", "emergency"})
"""A patient waits on these: never dropped by the hourly limit."""


class OutboxAlerter:
    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        clock: Clock,
        *,
        dedup_minutes: int = 30,
        max_per_hour: int = 12,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._clock = clock
        self._window = timedelta(minutes=dedup_minutes)
        self._max = max_per_hour
        self.suppressed = 0

    async def alert(
        self,
        kind: str,
        message: str,
        *,
        dedup_key: str | None = None,
        private: bool = False,
    ) -> None:
        await asyncio.to_thread(self.alert_sync, kind, message, dedup_key, private=private)

    def alert_sync(
        self, kind: str, message: str, dedup_key: str | None = None, *, private: bool = False
    ) -> bool:
        """Enqueue in its own transaction; True when a message will go out.

        ``private``: a patient waits on it (an emergency): the hourly cap does not hold it back.
        """
        try:
            with transaction(self._engine) as session:
                return self.enqueue_in(session, kind, message, dedup_key=dedup_key, private=private)
        except IntegrityError:
            return self._suppress(kind, "duplicate")
        except Exception:
            logger.exception("could not enqueue alert %s", kind)
            return False

    def enqueue_in(
        self,
        session: Session,
        kind: str,
        message: str,
        *,
        dedup_key: str | None = None,
        private: bool = False,
    ) -> bool:
        """Enqueue inside the caller's transaction (dead-letter hooks use this)."""
        now = self._clock.now()
        kind = kind[:40]
        prefix = f"alert:{kind}@{dedup_key[:64]}:" if dedup_key else f"alert:{kind}:"
        recent_same = session.execute(
            select(func.count()).where(
                col(OutboxRow.kind) == "alert",
                col(OutboxRow.key).startswith(prefix),
                col(OutboxRow.created_at) > now - self._window,
            )
        ).scalar_one()
        if recent_same:
            return self._suppress(kind, "duplicate")
        if kind not in PATIENT_REQUESTS and not private:
            last_hour = session.execute(
                select(func.count()).where(
                    col(OutboxRow.kind) == "alert",
                    col(OutboxRow.created_at) > now - timedelta(hours=1),
                )
            ).scalar_one()
            if last_hour >= self._max:
                return self._suppress(kind, "rate limit")
        bucket = int(now.timestamp() // self._window.total_seconds())
        try:
            with session.begin_nested():
                row = self._outbox.enqueue_in(
                    session, "alert", f"{prefix}{bucket}", {"kind": kind, "message": message[:900]}
                )
        except IntegrityError:
            return self._suppress(kind, "duplicate")
        logger.warning("ALERT %s queued for the staff (outbox row %s)", kind, row.id)
        return True

    def _suppress(self, kind: str, why: str) -> bool:
        self.suppressed += 1
        logger.warning("ALERT %s not sent again (%s)", kind, why)
        return False


def appointment_fields(
    session: Session, texts: StaffTexts, language: str, clinic: Clinic, appointment_id: str | None
) -> dict[str, str]:
    """``name``, ``phone``, ``when`` and ``doctor`` of an appointment, for a staff text."""
    appointment = session.get(Appointment, appointment_id) if appointment_id else None
    patient = session.get(Patient, appointment.patient_id) if appointment else None
    fields = texts.patient_fields(language, patient, None)
    if appointment is not None:
        doctor = clinic.doctor(appointment.doctor_id)
        fields["when"] = say_when(appointment.start.astimezone(clinic.tz), language)
        fields["doctor"] = doctor.name if doctor else appointment.doctor_id
    return fields


def dead_letter_text(session: Session, row: OutboxRow, clinic: Clinic, texts: StaffTexts) -> str:
    """What a dead letter means for which appointment, and what the staff should do."""
    language = language_or_default(clinic.default_language)
    payload: dict[str, Any] = json.loads(row.payload or "{}")
    fields: dict[str, Any] = {"row": row.id, "attempts": row.attempts, "kind": row.kind}
    fields |= appointment_fields(session, texts, language, clinic, payload.get("appointment_id"))
    if row.kind == "calendar":
        backend = "clinic_api" if clinic.calendar_backend == "clinic_api" else "google"
        fields["system"] = texts.say(language, f"system_{backend}")
        op = str(payload.get("op"))
        if op == "reschedule":
            fields["old_when"] = _previous_start(session, row, clinic, language)
        key = f"dead_calendar_{op}"
        if texts.has(language, key):
            return texts.say(language, key, **fields)
    elif row.kind in ("whatsapp", "patient_message"):
        event = str(payload.get("event", "booked"))
        fields["what"] = texts.say(language, f"message_{event}")
        return texts.say(language, "dead_patient_message", **fields)
    elif row.kind == "sheets":
        return texts.say(language, "dead_sheets", **fields)
    return texts.say(language, "dead_other", **fields)


def _previous_start(session: Session, row: OutboxRow, clinic: Clinic, language: str) -> str:
    """The time before a reschedule, from the interaction that caused the row."""
    _, _, interaction_id = row.key.rpartition(":")
    interaction = (
        session.get(Interaction, int(interaction_id)) if interaction_id.isdigit() else None
    )
    try:
        before = json.loads(interaction.details or "{}").get("from") if interaction else None
        start = datetime.fromisoformat(before["start"]) if isinstance(before, dict) else None
    except (ValueError, KeyError, TypeError):
        start = None
    return say_when(start.astimezone(clinic.tz), language) if start else "?"
