"""How an appointment is said to the model: the tools' listing and the confirmation call's
prompt read the same fields, so both say an appointment the same way."""

from __future__ import annotations

from typing import Any

from voice_agent.clinic.model import Clinic
from voice_agent.i18n import say_when
from voice_agent.store.tables import Appointment


def describe_appointment(clinic: Clinic, appointment: Appointment, language: str) -> dict[str, Any]:
    doctor = clinic.doctor(appointment.doctor_id)
    service = clinic.service(appointment.service_id)
    local = appointment.start.astimezone(clinic.tz)
    return {
        "appointment_id": appointment.id,
        "when": say_when(local, language),
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M"),
        "doctor": doctor.name if doctor else appointment.doctor_id,
        "service": service.name(language) if service else appointment.service_id,
        "status": appointment.status.value,
        "address": clinic.address,
        **({"for_whom": appointment.attendee_name} if appointment.attendee_name else {}),
    }
