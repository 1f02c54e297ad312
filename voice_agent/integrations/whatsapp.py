"""WhatsApp through Twilio: booked/moved/cancelled messages to patients, alerts to the doctor.

Both are outbox handlers. Twilio's Messages API takes no idempotency key, so a retried row (an
earlier attempt may have reached Twilio before the process died or the answer was lost) first
lists the messages sent to that number since the row was created and reuses a matching one.

Inside WhatsApp's 24-hour customer window a free ``Body`` is sent; outside it (the patient has
not written to us in the last 24 hours) only an approved template (``ContentSid``) is allowed,
and Twilio answers error 63016 to a ``Body``. Twilio may also accept a message and report later
(status callback, ``web/twilio_status.py``) that it failed: the row is then reopened and resent
as a template, or becomes a dead letter that tells the staff whom to call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select
from sqlmodel import Session, col
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from voice_agent.alerts import StaffTexts
from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.errors import OutsideWindow, PermanentFailure
from voice_agent.i18n import language_or_default, say_when
from voice_agent.integrations.outbox import Delivered, Outbox, OutboxItem, Outcome, deliver_each
from voice_agent.metrics import ALERTS_SENT
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow
from voice_agent.store.tables import Appointment, Interaction, Patient

logger = logging.getLogger(__name__)

OUTSIDE_WINDOW = 63016
WINDOW = timedelta(hours=24) - timedelta(minutes=10)  # a margin for the time in the queue

PATIENT_MESSAGES = "patient_messages.yaml"
EVENTS = ("booked", "rescheduled", "cancelled")
FAILED_STATUSES = ("failed", "undelivered")
STATUS_PATH = "/twilio/message-status"


def last_inbound(session: Session, patient_id: str) -> datetime | None:
    """When the patient last wrote to us on WhatsApp (their 24-hour window opens then)."""
    return session.execute(
        select(col(Interaction.at))
        .where(col(Interaction.patient_id) == patient_id, col(Interaction.channel) == "whatsapp")
        .order_by(col(Interaction.at).desc())
        .limit(1)
    ).scalar_one_or_none()


def whatsapp_address(phone: str) -> str:
    return phone if phone.startswith("whatsapp:") else f"whatsapp:{phone}"


@cache
def _patient_texts(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


def patient_text(prompts_dir: Path, language: str, event: str, **fields: str) -> str:
    """The message to the patient about ``event``, in their language (prompts/<lang>/)."""
    texts = _patient_texts(prompts_dir / language_or_default(language) / PATIENT_MESSAGES)
    greeting = texts["greeting_named"] if fields.get("first_name") else texts["greeting"]
    fields["greeting"] = greeting.format(**fields)
    return texts[event].format(**fields)


@dataclass(frozen=True)
class Message:
    to: str
    body: str | None = None
    content_sid: str | None = None
    variables: dict[str, str] | None = None

    def matches(self, sent_body: str) -> bool:
        if self.body is not None:
            return sent_body == self.body
        return all(value in sent_body for value in (self.variables or {}).values())


class WhatsAppSender:
    """Sends one message idempotently (see the module docstring); with ``whatsapp=False`` the
    same goes out as an SMS (no window, no templates). ``status_callback`` is where Twilio
    reports a message that fails after it was accepted."""

    def __init__(
        self,
        client: Client,
        sender: str,
        *,
        whatsapp: bool = True,
        status_callback: str | None = None,
    ) -> None:
        self._client = client
        self.whatsapp = whatsapp
        self._from = whatsapp_address(sender) if whatsapp else sender
        self._status_callback = status_callback

    def _address(self, phone: str) -> str:
        return whatsapp_address(phone) if self.whatsapp else phone.removeprefix("whatsapp:")

    async def send(self, message: Message, *, lookup_since: datetime | None) -> str:
        return await asyncio.to_thread(self._send, message, lookup_since)

    def _send(self, message: Message, lookup_since: datetime | None) -> str:
        to = self._address(message.to)
        try:
            if lookup_since is not None:
                for sent in self._client.messages.list(
                    to=to, from_=self._from, date_sent_after=lookup_since, limit=50
                ):
                    if sent.status in FAILED_STATUSES:
                        continue  # it failed after all: it does not count as sent
                    if sent.body is not None and message.matches(sent.body):
                        logger.info("message already sent (%s); not sending again", sent.sid)
                        return str(sent.sid)
            params: dict[str, Any] = {"to": to, "from_": self._from}
            if self._status_callback:
                params["status_callback"] = self._status_callback
            if message.content_sid:
                params["content_sid"] = message.content_sid
                params["content_variables"] = json.dumps(message.variables or {})
            else:
                params["body"] = message.body
            created = self._client.messages.create(**params)
            return str(created.sid)
        except TwilioRestException as error:
            if error.code == OUTSIDE_WINDOW:
                raise OutsideWindow(str(error.code)) from error
            if error.status in (400, 401, 403, 404):
                raise PermanentFailure(
                    f"Twilio error {error.code} (HTTP {error.status})"
                ) from error
            raise ConnectionError(f"Twilio error {error.code} (HTTP {error.status})") from error
        except TwilioException as error:
            raise ConnectionError(f"Twilio: {type(error).__name__}") from error


class PatientMessageHandler:
    """Outbox kind ``whatsapp``: the patient is told in writing that an appointment was booked,
    moved or cancelled (``event`` in the payload; old rows without one are bookings). The text
    is built at delivery from the appointment as it is then (a booking cancelled meanwhile is
    not confirmed). Inside the 24-hour window a free text goes out, outside it the event's
    template for the patient's language; a row reopened by a late failure
    (``force_template``) goes straight to the template."""

    kind = "whatsapp"
    batch_size = 1

    def __init__(
        self,
        engine: Engine,
        sender: WhatsAppSender,
        clinic: Callable[[], Clinic],
        clock: Clock,
        *,
        templates: dict[str, dict[str, str]],
        prompts_dir: Path,
    ) -> None:
        self._engine = engine
        self._sender = sender
        self._clinic = clinic
        self._clock = clock
        self._templates = templates
        self._prompts = prompts_dir

    def template_for(self, event: str, language: str) -> str | None:
        by_language = self._templates.get(event) or {}
        return by_language.get(language) or by_language.get("*")

    def _load(
        self, appointment_id: str, interaction_id: int | None
    ) -> tuple[Appointment | None, Patient | None, datetime | None, datetime | None]:
        with transaction(self._engine) as session:
            appointment = session.get(Appointment, appointment_id)
            if appointment is None:
                return None, None, None, None
            patient = session.get(Patient, appointment.patient_id)
            previous = None
            interaction = session.get(Interaction, interaction_id) if interaction_id else None
            if interaction is not None:
                try:
                    before = json.loads(interaction.details or "{}").get("from") or {}
                    previous = datetime.fromisoformat(before["start"])
                except (ValueError, KeyError, TypeError, AttributeError):
                    previous = None
            return appointment, patient, last_inbound(session, appointment.patient_id), previous

    async def deliver(self, items: list[OutboxItem]) -> list[Outcome]:
        return await deliver_each(items, self._deliver_one)

    async def _deliver_one(self, item: OutboxItem) -> Delivered:
        event = str(item.payload.get("event", "booked"))
        appointment, patient, last_inbound, previous = await asyncio.to_thread(
            self._load, item.payload["appointment_id"], item.payload.get("interaction_id")
        )
        if appointment is None or patient is None:
            raise PermanentFailure("appointment not found")
        if event != "cancelled" and not appointment.active:
            return Delivered()  # cancelled before the message went out
        clinic = self._clinic()
        language = language_or_default(patient.language or clinic.default_language)
        doctor = clinic.doctor(appointment.doctor_id)
        first_name = (patient.full_name or "").split()[0] if patient.full_name else ""
        fields = {
            "first_name": first_name,
            "clinic": clinic.name,
            "when": say_when(appointment.start.astimezone(clinic.tz), language),
            "old_when": say_when(previous.astimezone(clinic.tz), language) if previous else "",
            "doctor": doctor.name if doctor else appointment.doctor_id,
            "address": clinic.address,
            "phone": clinic.phone,
        }
        body = patient_text(self._prompts, language, event, **fields)
        lookup = item.created_at - timedelta(minutes=5) if item.retried else None
        if not self._sender.whatsapp:  # SMS: no window, no template
            return Delivered(
                await self._sender.send(Message(to=patient.phone, body=body), lookup_since=lookup)
            )
        in_window = last_inbound is not None and self._clock.now() - last_inbound < WINDOW
        if in_window and not item.payload.get("force_template"):
            try:
                sid = await self._sender.send(
                    Message(to=patient.phone, body=body), lookup_since=lookup
                )
                return Delivered(sid)
            except OutsideWindow:
                logger.info("window closed after all; falling back to the template")
        template = self.template_for(event, language)
        if not self._templates.get(event) and not item.payload.get("force_template"):
            logger.info("no %s template configured; the message waits for the patient", event)
            return Delivered()  # the clinic chose to write only inside the window
        if not template:
            raise PermanentFailure(
                f"the patient's WhatsApp window is closed and no {event} template is set for "
                f"{language}"
            )
        variables = {"1": first_name, "2": fields["when"], "3": fields["doctor"]}
        if event == "rescheduled":
            variables["4"] = fields["old_when"]
        message = Message(to=patient.phone, content_sid=template, variables=variables)
        return Delivered(await self._sender.send(message, lookup_since=lookup))


class AlertHandler:
    """Outbox kind ``alert``: one WhatsApp message to the clinic's ``doctor_whatsapp``."""

    kind = "alert"
    batch_size = 1

    def __init__(
        self,
        sender: WhatsAppSender | None,
        clinic: Callable[[], Clinic],
        *,
        template_sid: str | None,
        texts: StaffTexts,
    ) -> None:
        self._sender = sender
        self._clinic = clinic
        self._template = template_sid
        self._texts = texts

    async def deliver(self, items: list[OutboxItem]) -> list[Outcome]:
        return await deliver_each(items, self._deliver_one)

    async def _deliver_one(self, item: OutboxItem) -> Delivered:
        delivered = await self._send_alert(item)
        ALERTS_SENT.labels(str(item.payload.get("kind", "?"))[:40]).inc()
        return delivered

    async def _send_alert(self, item: OutboxItem) -> Delivered:
        clinic = self._clinic()
        prefix = self._texts.say(clinic.default_language, "alert_prefix", clinic=clinic.name)
        text = f"{prefix} {item.payload['message']}"
        if self._sender is None or not clinic.doctor_whatsapp:
            # The text names a patient: it stays in the outbox (`voice-agent alerts`), not the log.
            logger.warning(
                "ALERT %s not sent: no WhatsApp sender or doctor_whatsapp; read it with "
                "`voice-agent alerts`",
                item.payload["kind"],
            )
            return Delivered()
        lookup = item.created_at - timedelta(minutes=5) if item.retried else None
        to = "+" + "".join(ch for ch in clinic.doctor_whatsapp if ch.isdigit())
        if item.payload.get("force_template"):
            if not self._template:
                raise PermanentFailure("the alert was not delivered and no alert template is set")
            message = Message(to=to, content_sid=self._template, variables={"1": text[:1000]})
            return Delivered(await self._sender.send(message, lookup_since=lookup))
        try:
            return Delivered(
                await self._sender.send(Message(to=to, body=text), lookup_since=lookup)
            )
        except OutsideWindow:
            if not self._template:
                raise PermanentFailure(
                    "the doctor's WhatsApp window is closed and no alert template is set"
                ) from None
        message = Message(to=to, content_sid=self._template, variables={"1": text[:1000]})
        return Delivered(await self._sender.send(message, lookup_since=lookup))


def retry_as_template(row: OutboxRow, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A message Twilio accepted and then failed: once more as a template (the only form that
    passes outside the 24-hour window); a template that failed too is a dead letter."""
    if row.kind not in ("whatsapp", "alert") or payload.get("force_template"):
        return None
    return {"force_template": True}


def late_failure(outbox: Outbox, message_sid: str, status: str, error_code: str) -> str:
    """Twilio's status callback said ``failed``/``undelivered``: what became of the row."""
    if status not in FAILED_STATUSES:
        return "ignored"
    row = outbox.fail_after_delivery(
        message_sid,
        f"Twilio {status} after acceptance: error {error_code or '?'}",
        retry_as_template,
    )
    if row is None:
        return "unknown"
    return str(row.status.value)
