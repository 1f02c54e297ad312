"""What a channel injects into every tool call: services, the verified caller, channel, language.

The model never sees this object and cannot change it: the caller is whoever the channel verified
(the ``From`` of a phone call or WhatsApp message), not whoever the model says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from voice_agent.store.tables import InteractionKind, Patient
from voice_agent.tools.registry import ToolError

if TYPE_CHECKING:
    from voice_agent.services import Services

ToolRecorder = Callable[[str, dict[str, Any], dict[str, Any], bool], Awaitable[None]]


class CallControl(Protocol):
    """Offered by voice channels only; text channels leave it empty."""

    async def end_call(self, reason: str) -> None: ...

    async def transfer_to_staff(self, summary: str) -> None: ...

    async def flag_emergency(self, summary: str) -> None: ...


@dataclass
class ToolContext:
    services: Services
    channel: str
    conversation_id: str
    caller_phone: str | None
    language: str
    call_sid: str | None = None
    call_control: CallControl | None = None
    recorder: ToolRecorder | None = None
    appointment_scope: str | None = None
    """Confirmation calls may act on this one appointment only."""
    _patient: Patient | None = field(default=None, repr=False)

    async def patient(self) -> Patient:
        """The verified caller as a patient, created on first contact."""
        if self._patient is None:
            if self.caller_phone is None:
                raise ToolError(
                    "I need the caller's phone number before I can look up or book appointments.",
                    code="no_verified_caller",
                )
            self._patient = await self.services.patients.find_or_create(
                self.caller_phone, self.language
            )
        return self._patient

    def forget_patient(self) -> None:
        """Drop the cached patient after its details changed."""
        self._patient = None

    async def record_tool(
        self, name: str, arguments: dict[str, Any], output: dict[str, Any], ok: bool
    ) -> None:
        if self.recorder is not None:
            await self.recorder(name, arguments, output, ok)

    async def report_failure(self, message: str, *, alert: str = "failure", **fields: Any) -> None:
        """A failure the clinic should know about: logged as an interaction, and alerted with
        the staff text ``alert`` (who was talking, their number, where to read it)."""
        from voice_agent.alerts import alert_patient_request

        patient_id = self._patient.id if self._patient is not None else None
        await self.services.interactions.record(
            InteractionKind.failure,
            channel=self.channel,
            patient_id=patient_id,
            details={"message": message, "call_sid": self.call_sid},
        )
        await alert_patient_request(
            self.services,
            alert,
            patient=self._patient,
            phone=self.caller_phone,
            channel=self.channel,
            call_sid=self.call_sid,
            conversation_id=self.conversation_id,
            patient_language=self.language,
            problem=message,
            **fields,
        )
