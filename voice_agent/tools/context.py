"""What a channel injects into every tool call: services, the caller, channel, language.

The model never sees this object and cannot change it. ``caller_phone`` is whoever the channel
says is calling; ``phone_verified`` says whether the carrier vouches for it (caller id, the
``From`` of WhatsApp/SMS). Otherwise (withheld caller id, web chat, digits spoken on the no-AI
line) the caller may book, but reading, moving, cancelling or confirming an existing appointment
waits until this conversation proved it is the patient (``verified_patient``): a code sent to
the phone on file, or the birth date on file. The check is here, in code, not in a prompt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from voice_agent.alerts import StaffAlertDeps, alert_patient_request
from voice_agent.interactions import Actor, acting_as, current_actor
from voice_agent.store.tables import Appointment, InteractionKind, Patient
from voice_agent.tools.registry import ToolError

if TYPE_CHECKING:
    from voice_agent.clock import Clock
    from voice_agent.identity import IdentityService, SendOutcome
    from voice_agent.interactions import InteractionLog
    from voice_agent.patients.service import PatientService
    from voice_agent.scheduling.booking import BookingService

ToolRecorder = Callable[[str, dict[str, Any], dict[str, Any], bool], Awaitable[None]]


class NoteSink(Protocol):
    """Takes an interaction row that describes no change, to be written with a call's batch."""

    def __call__(
        self,
        kind: InteractionKind,
        *,
        channel: str,
        patient_id: str | None,
        details: dict[str, Any],
        actor: Actor,
    ) -> None: ...


class ToolServices(StaffAlertDeps, Protocol):
    """The services a tool may use, and no more (no engine, no outbox, no registry): the
    wiring's ``Services`` satisfies it, and so would a narrower holder in a test."""

    @property
    def clock(self) -> Clock: ...

    @property
    def booking(self) -> BookingService: ...

    @property
    def patients(self) -> PatientService: ...

    @property
    def identity(self) -> IdentityService: ...

    @property
    def interactions(self) -> InteractionLog: ...


class CallControl(Protocol):
    """Offered by voice channels only; text channels leave it empty."""

    async def end_call(self, reason: str) -> None: ...

    async def transfer_to_staff(self, summary: str) -> None: ...

    async def flag_emergency(self, summary: str) -> None: ...


@dataclass
class ToolContext:
    services: ToolServices
    channel: str
    conversation_id: str
    caller_phone: str | None
    language: str
    call_sid: str | None = None
    call_control: CallControl | None = None
    recorder: ToolRecorder | None = None
    notes: NoteSink | None = None
    """Where a call sends its question-only interaction rows (batched); None: written at once."""
    appointment_scope: str | None = None
    """Confirmation calls may act on this one appointment only."""
    phone_verified: bool = False
    """The carrier vouches for ``caller_phone`` (caller id, WhatsApp/SMS ``From``)."""
    known_patient_id: str | None = None
    """The caller's patient id when the channel already read it (the text turn reads it with the
    conversation's state): tools that need only the id then need no look-up."""
    _patient: Patient | None = field(default=None, repr=False)
    _identity: tuple[str, str] | None = field(default=None, repr=False)
    """(patient id, code | birth_date) once this conversation proved who it is."""

    async def patient(self) -> Patient:
        """The verified caller as a patient, created on first contact."""
        if self._patient is None:
            if self.caller_phone is None:
                raise ToolError(
                    "I need the caller's phone number before I can look up or book "
                    "appointments: ask for it and pass it as phone= to register_patient (to "
                    "book) or send_verification_code (to reach their appointments).",
                    code="no_verified_caller",
                )
            self._patient = await self.services.patients.find_or_create(
                self.caller_phone, self.language
            )
        return self._patient

    async def patient_id(self) -> str:
        """The caller's patient id: as already known (no query), else looked up or created."""
        if self._patient is not None:
            return self._patient.id
        if self.known_patient_id is not None:
            return self.known_patient_id
        return (await self.patient()).id

    @property
    def known_patient(self) -> Patient | None:
        """The caller as a patient if already looked up (no database read)."""
        return self._patient

    def forget_patient(self) -> None:
        """Drop the cached patient after its details changed."""
        self._patient = None

    def claim_phone(self, phone: str) -> None:
        """A number the caller said (their own is withheld or typed): never carrier-verified."""
        if phone != self.caller_phone:
            self.caller_phone, self.phone_verified = phone, False
            self._patient, self._identity, self.known_patient_id = None, None, None

    async def verified_by(self) -> str:
        """How we know the caller is the patient: carrier | code | birth_date | unverified."""
        if self.caller_phone is None:
            return "unverified"
        if self.phone_verified:
            return "carrier"
        patient = await self.patient()
        if self._identity is not None and self._identity[0] == patient.id:
            return self._identity[1]
        how = await self.services.identity.verified_by(self.conversation_id, patient.id)
        if how is None:
            return "unverified"
        self._identity = (patient.id, how)
        return how

    async def made_here(self, patient_id: str) -> list[Appointment]:
        """The patient's upcoming appointments booked in this conversation (its request keys,
        ``<conversation>:book:<hold>``): changing them reveals nothing the conversation does
        not know, so they need no identity check."""
        return await self.services.booking.made_in(patient_id, f"{self.conversation_id}:book:")

    def note_verified(self, patient_id: str, how: str) -> None:
        self._identity = (patient_id, how)

    async def verified_patient(self, appointment_id: str | None = None) -> Patient:
        """The caller as a patient, if they proved it, or if ``appointment_id`` is one this
        conversation booked; otherwise a code goes to the phone on file and the tool refuses
        with words that tell the model how to go on."""
        patient = await self.patient()
        if await self.verified_by() != "unverified":
            return patient
        if appointment_id is not None and any(
            a.id == appointment_id for a in await self.made_here(patient.id)
        ):
            return patient
        outcome = await self.services.identity.send_code(
            self.conversation_id, self.channel, patient, self.language
        )
        raise ToolError(
            verify_first_message(outcome, has_birth_date=patient.birth_date is not None),
            code=verify_first_code(outcome),
        )

    def interaction_actor(self) -> Actor:
        """Who the interaction log names for changes made in this conversation."""
        how = "unverified"
        if self.phone_verified and self.caller_phone:
            how = "carrier"
        elif (
            self._identity is not None
            and self._patient is not None
            and self._identity[0] == self._patient.id
        ):
            how = self._identity[1]
        return Actor("patient", call_id=self.call_sid or self.conversation_id, verified_by=how)

    def acting(self) -> AbstractContextManager[None]:
        """Interaction rows written inside carry this caller, channel and call/conversation."""
        return acting_as(self.interaction_actor)

    async def record_tool(
        self, name: str, arguments: dict[str, Any], output: dict[str, Any], ok: bool
    ) -> None:
        if self.recorder is not None:
            await self.recorder(name, arguments, output, ok)

    async def note(
        self, kind: InteractionKind, *, patient_id: str | None, details: dict[str, Any]
    ) -> None:
        """Log an interaction that changes nothing (a question answered): on a call it goes
        with the call's next batch of rows (within a second), elsewhere it is written now."""
        if self.notes is not None:
            self.notes(
                kind,
                channel=self.channel,
                patient_id=patient_id,
                details=details,
                actor=current_actor(),  # the caller acting now, as a row written now would say
            )
            return
        await self.services.interactions.record(
            kind, channel=self.channel, patient_id=patient_id, details=details
        )

    async def report_failure(self, message: str, *, alert: str = "failure", **fields: Any) -> None:
        """A failure the clinic should know about: logged as an interaction, and alerted with
        the staff text ``alert`` (who was talking, their number, where to read it)."""
        patient_id = self._patient.id if self._patient is not None else None
        await self.services.interactions.record(
            InteractionKind.failure,
            channel=self.channel,
            patient_id=patient_id,
            details={"message": message, "call_sid": self.call_sid},
            actor=self.interaction_actor(),
        )
        await self.alert_staff(alert, self._patient, problem=message, **fields)

    async def alert_staff(self, key: str, patient: Patient | None, **fields: Any) -> None:
        """Alert the staff text ``key`` about this conversation: who (name, callback number,
        language), on which channel, and where to read it; ``fields`` fill the rest."""
        await alert_patient_request(
            self.services,
            key,
            patient=patient,
            phone=self.caller_phone,
            channel=self.channel,
            call_sid=self.call_sid,
            conversation_id=self.conversation_id,
            patient_language=self.language,
            **fields,
        )


def verify_first_code(outcome: SendOutcome) -> str:
    return "identity_locked" if outcome.status == "locked" else "verify_first"


def verify_first_message(outcome: SendOutcome, *, has_birth_date: bool = True) -> str:
    """What the model reads when a tool waits for the caller to prove who they are."""
    birth_date = "ask their date of birth and call verify_identity(birth_date=...)"
    if outcome.status in ("sent", "pending"):
        return (
            f"Verify first: I sent a 6-digit code by {outcome.route or 'message'} to the phone "
            f"on file ending in {outcome.masked_phone[-4:]}. Ask the caller to read it back and "
            f"call verify_identity(code=...), or {birth_date}. Do not read out, move or cancel "
            "any appointment before that."
        )
    if outcome.status == "locked":
        return (
            "The caller's identity could not be verified (too many wrong answers). Do not read "
            "out or change appointments; offer to transfer them to the clinic staff."
        )
    if not has_birth_date:
        return (
            "The caller's identity cannot be verified in this conversation: codes cannot be "
            "sent and there is no date of birth on file. Do not read out, move or cancel any "
            "appointment. Offer to pass the request to the clinic staff (request_callback), who "
            "will call back, or give the clinic's phone number."
        )
    return (
        f"Verify first: codes cannot be sent right now, so {birth_date}. Do not read out, move "
        "or cancel any appointment before that."
    )
