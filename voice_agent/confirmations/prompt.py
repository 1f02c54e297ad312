"""What the Realtime receptionist is told about the appointment of a confirmation call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Engine

from voice_agent.clinic.model import Clinic
from voice_agent.confirmations.messages import appointment_values, confirmation_texts
from voice_agent.scheduling.describe import describe_appointment
from voice_agent.settings import Settings
from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, Patient


class PromptDeps(Protocol):
    """The appointment's row (engine), the clinic and the prompts (settings)."""

    @property
    def engine(self) -> Engine: ...

    @property
    def clinic(self) -> Callable[[], Clinic]: ...

    @property
    def settings(self) -> Settings: ...


def confirmation_prompt_values(
    services: PromptDeps, appointment_id: str, patient: Patient | None, language: str
) -> dict[str, str]:
    """``$appointment``, ``$appointment_id`` and the opening ``$greeting`` of confirmation.md."""
    with transaction(services.engine) as session:
        appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        return {"appointment": "-", "appointment_id": appointment_id}
    clinic = services.clinic()
    texts = confirmation_texts(services.settings.prompts_dir, language)
    described = describe_appointment(clinic, appointment, texts.language)
    values = appointment_values(clinic, appointment, patient, texts)
    return {
        "appointment_id": appointment.id,
        "appointment": (
            f"{described['when']}, {described['service']}, {described['doctor']}, "
            f"{described['address']} ({described['status']})"
        ),
        "greeting": texts.get("greeting", **values),
    }
