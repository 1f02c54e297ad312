"""The clinic in force lives in the database, so every process of a deployment sees the same one."""

from __future__ import annotations

import json

from sqlalchemy import Engine, select
from sqlmodel import col

from voice_agent.clinic.model import Clinic
from voice_agent.clinic.versions import save_version
from voice_agent.store.db import transaction
from voice_agent.store.tables import ACTIVE_STATUSES, Appointment, ClinicVersion


def save_clinic(
    engine: Engine, clinic: Clinic, source: str, *, author_id: int | None = None
) -> list[str]:
    """Store a new clinic version; appointments are untouched. Returns warnings for the operator.

    A warning is returned when future appointments point at a doctor or service the new file no
    longer has: they are kept (the patient still expects them) and staff must move them by hand.
    """
    save_version(engine, clinic, source=source, author_id=author_id)
    with transaction(engine) as session:
        rows = session.execute(
            select(col(Appointment.doctor_id), col(Appointment.service_id)).where(
                col(Appointment.status).in_(ACTIVE_STATUSES)
            )
        ).all()
    warnings: list[str] = []
    orphan_doctors = sorted({d for d, _ in rows if clinic.doctor(d) is None})
    orphan_services = sorted({s for _, s in rows if clinic.service(s) is None})
    if orphan_doctors:
        warnings.append(f"active appointments reference removed doctors: {orphan_doctors}")
    if orphan_services:
        warnings.append(f"active appointments reference removed services: {orphan_services}")
    return warnings


def load_active_clinic(engine: Engine) -> Clinic | None:
    with transaction(engine) as session:
        row = session.execute(
            select(col(ClinicVersion.content)).order_by(col(ClinicVersion.id).desc()).limit(1)
        ).scalar_one_or_none()
    if row is None:
        return None
    return Clinic.model_validate(json.loads(row))
