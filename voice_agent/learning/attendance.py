"""Staff mark whether a patient came: the labels the no-show model learns from."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import Engine, select
from sqlmodel import col

from voice_agent.store.db import transaction
from voice_agent.store.tables import ACTIVE_STATUSES, Appointment, AppointmentStatus

logger = logging.getLogger(__name__)

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


@runtime_checkable
class AttendanceSource(Protocol):
    """A calendar backend that reports whether the patient came (the clinic's REST API)."""

    def attendance_by_reference(self, reference: str) -> str | None: ...


def sync_attendance(
    engine: Engine, source: AttendanceSource, now: datetime, *, days: int = 7, limit: int = 200
) -> int:
    """Read attended / no-show from the clinic's system for our appointments that ended in the
    last ``days`` and are not marked yet; returns how many were marked. One failing look-up is
    logged and left for the next run."""
    with transaction(engine) as session:
        ids = list(
            session.execute(
                select(col(Appointment.id))
                .where(
                    col(Appointment.status).in_(ACTIVE_STATUSES),
                    col(Appointment.external_id).is_not(None),
                    col(Appointment.end) <= now,
                    col(Appointment.end) > now - timedelta(days=days),
                )
                .order_by(col(Appointment.end))
                .limit(limit)
            ).scalars()
        )
    marked = 0
    for appointment_id in ids:
        try:
            mark = source.attendance_by_reference(appointment_id)
        except Exception:  # the API down for a minute: the next run asks again
            logger.warning("attendance look-up failed for appointment %s", appointment_id)
            continue
        if mark is not None:
            mark_attendance(engine, appointment_id, mark, now)
            marked += 1
    return marked
