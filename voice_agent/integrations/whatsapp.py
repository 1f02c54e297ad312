"""WhatsApp through Twilio: booking confirmations to patients and alerts to the doctor.

Both are outbox handlers. Twilio's Messages API takes no idempotency key, so a retried row (an
earlier attempt may have reached Twilio before the process died or the answer was lost) first
lists the messages sent to that number since the row was created and reuses a matching one.

Inside WhatsApp's 24-hour customer window a free ``Body`` is sent; outside it (the patient has
not written to us in the last 24 hours) only an approved template (``ContentSid``) is allowed,
and Twilio answers error 63016 to a ``Body``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, col
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.i18n import say_when
from voice_agent.integrations.outbox import Delivered, OutboxItem, Outcome, PermanentFailure
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, Interaction, Patient

logger = logging.getLogger(__name__)

OUTSIDE_WINDOW = 63016
WINDOW = timedelta(hours=24) - timedelta(minutes=10)  # a margin for the time in the queue

CONFIRMATION = {
    "pt-BR": (
        "Olá, {first_name}! Sua consulta na {clinic} está marcada para {when}, com {doctor}. "
        "Endereço: {address}. Para remarcar ou cancelar, responda esta mensagem ou ligue "
        "para {phone}."
    ),
    "en": (
        "Hello {first_name}! Your appointment at {clinic} is booked for {when} with {doctor}. "
        "Address: {address}. To reschedule or cancel, reply to this message or call {phone}."
    ),
    "ru": (
        "Здравствуйте, {first_name}! Вы записаны в {clinic} на {when}, врач: {doctor}. "
        "Адрес: {address}. Чтобы перенести или отменить запись, ответьте на это сообщение "
        "или позвоните по номеру {phone}."
    ),
}


def last_inbound(session: Session, patient_id: str) -> datetime | None:
    """When the patient last wrote to us on WhatsApp (their 24-hour window opens then)."""
    return session.execute(
        select(Interaction.at)
        .where(Interaction.patient_id == patient_id, Interaction.channel == "whatsapp")
        .order_by(col(Interaction.at).desc())
        .limit(1)
    ).scalar_one_or_none()


def whatsapp_address(phone: str) -> str:
    return phone if phone.startswith("whatsapp:") else f"whatsapp:{phone}"


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


class OutsideWindow(Exception):
    """Twilio refused a free-form Body: the recipient's 24-hour window is closed."""


class WhatsAppSender:
    """Sends one message idempotently (see the module docstring)."""

    def __init__(self, client: Client, sender: str) -> None:
        self._client = client
        self._from = whatsapp_address(sender)

    async def send(self, message: Message, *, lookup_since: datetime | None) -> str:
        return await asyncio.to_thread(self._send, message, lookup_since)

    def _send(self, message: Message, lookup_since: datetime | None) -> str:
        to = whatsapp_address(message.to)
        try:
            if lookup_since is not None:
                for sent in self._client.messages.list(
                    to=to, from_=self._from, date_sent_after=lookup_since, limit=50
                ):
                    if sent.body is not None and message.matches(sent.body):
                        logger.info("message already sent (%s); not sending again", sent.sid)
                        return str(sent.sid)
            params: dict[str, Any] = {"to": to, "from_": self._from}
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


class ConfirmationHandler:
    """Outbox kind ``whatsapp``: the booking confirmation, built at delivery from the
    appointment as it is then (a booking cancelled meanwhile is not confirmed)."""

    kind = "whatsapp"
    batch_size = 1

    def __init__(
        self,
        engine: Engine,
        sender: WhatsAppSender,
        clinic: Callable[[], Clinic],
        clock: Clock,
        *,
        template_sid: str | None,
    ) -> None:
        self._engine = engine
        self._sender = sender
        self._clinic = clinic
        self._clock = clock
        self._template = template_sid

    def _load(
        self, appointment_id: str
    ) -> tuple[Appointment | None, Patient | None, datetime | None]:
        with transaction(self._engine) as session:
            appointment = session.get(Appointment, appointment_id)
            if appointment is None:
                return None, None, None
            patient = session.get(Patient, appointment.patient_id)
            return appointment, patient, last_inbound(session, appointment.patient_id)

    async def deliver(self, items: list[OutboxItem]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for item in items:
            try:
                outcomes.append(await self._deliver_one(item))
            except Exception as error:
                outcomes.append(error)
        return outcomes

    async def _deliver_one(self, item: OutboxItem) -> Delivered:
        appointment, patient, last_inbound = await asyncio.to_thread(
            self._load, item.payload["appointment_id"]
        )
        if appointment is None or patient is None:
            raise PermanentFailure("appointment not found")
        if not appointment.active:
            return Delivered()  # cancelled before the confirmation went out
        clinic = self._clinic()
        language = patient.language if patient.language in CONFIRMATION else None
        language = language or clinic.default_language
        doctor = clinic.doctor(appointment.doctor_id)
        first_name = (patient.full_name or "").split()[0] if patient.full_name else ""
        fields = {
            "first_name": first_name,
            "clinic": clinic.name,
            "when": say_when(appointment.start.astimezone(clinic.tz), language),
            "doctor": doctor.name if doctor else appointment.doctor_id,
            "address": clinic.address,
            "phone": clinic.phone,
        }
        body = CONFIRMATION.get(language, CONFIRMATION["en"]).format(**fields)
        if not first_name:
            body = body.replace(", !", "!").replace(" , ", " ")
        lookup = item.created_at - timedelta(minutes=5) if item.retried else None
        in_window = last_inbound is not None and self._clock.now() - last_inbound < WINDOW
        template = Message(
            to=patient.phone,
            content_sid=self._template,
            variables={"1": first_name, "2": fields["when"], "3": fields["doctor"]},
        )
        if in_window:
            try:
                sid = await self._sender.send(
                    Message(to=patient.phone, body=body), lookup_since=lookup
                )
                return Delivered(sid)
            except OutsideWindow:
                logger.info("window closed after all; falling back to the template")
        if not self._template:
            logger.info("no confirmation template configured; confirmation not sent")
            return Delivered()
        sid = await self._sender.send(template, lookup_since=lookup)
        return Delivered(sid)


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
    ) -> None:
        self._sender = sender
        self._clinic = clinic
        self._template = template_sid

    async def deliver(self, items: list[OutboxItem]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for item in items:
            try:
                outcomes.append(await self._deliver_one(item))
            except Exception as error:
                outcomes.append(error)
        return outcomes

    async def _deliver_one(self, item: OutboxItem) -> Delivered:
        clinic = self._clinic()
        text = f"⚠️ {clinic.name}: {item.payload['message']}"
        if self._sender is None or not clinic.doctor_whatsapp:
            logger.warning("ALERT %s: %s", item.payload["kind"], item.payload["message"])
            return Delivered()
        lookup = item.created_at - timedelta(minutes=5) if item.retried else None
        to = "+" + "".join(ch for ch in clinic.doctor_whatsapp if ch.isdigit())
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
