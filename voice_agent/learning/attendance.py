"""Staff mark whether a patient came: the labels the no-show model learns from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from voice_agent.store.db import transaction
from voice_agent.store.tables import Appointment, AppointmentStatus

MARKS = {"attended": AppointmentStatus.attended, "no-show": AppointmentStatus.no_show}
"""What staff type (``voice-agent agenda mark ID attended|no-show``) → the status stored."""
_MARKABLE = (
    AppointmentStatus.booked,
    AppointmentStatus.confirmed,
    AppointmentStatus.completed,
    AppointmentStatus.attended,
    AppointmentStatus.no_show,
)


class AttendanceError(Exception):
    """A mark that cannot be stored; the message says why in plain words."""


def mark_attendance(engine: Engine, appointment_id: str, mark: str, now: datetime) -> Appointment:
    """Store ``attended`` or ``no-show`` for an appointment that has started (a mistake can be
    corrected by marking again); cancelled and future appointments are refused."""
    status = MARKS.get(mark)
    if status is None:
        raise AttendanceError(f"unknown mark {mark!r}; use one of {', '.join(MARKS)}")
    with transaction(engine) as session:
        appointment = session.get(Appointment, appointment_id)
        if appointment is None:
            raise AttendanceError(f"no appointment {appointment_id!r}")
        if appointment.status not in _MARKABLE:
            raise AttendanceError(f"appointment {appointment_id} is {appointment.status.value}")
        if appointment.start > now:
            when = f"{appointment.start:%Y-%m-%d %H:%M} UTC"
            raise AttendanceError(f"appointment {appointment_id} has not started yet ({when})")
        appointment.status = status
        appointment.updated_at = now
        session.add(appointment)
        return appointment
