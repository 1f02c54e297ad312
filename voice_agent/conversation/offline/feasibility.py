"""Why a request cannot be met as asked, and the nearest request that can.

A patient who asks for a Sunday, Christmas, a date already gone, a doctor on a day he does not
work or a plan that does not cover the service deserves the reason and the nearest real
options, not a bare "no times". Pure: the clinic file and the wishes in, reasons out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from voice_agent.clinic.model import Clinic, Doctor
from voice_agent.conversation.offline.nlu import WEEKDAY_IDS, TimeWish
from voice_agent.i18n import WEEKDAYS, language_or_default, say_date


@dataclass
class Obstacle:
    """One reason, as a reply key and its fields."""

    key: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Feasible:
    obstacles: list[Obstacle]
    wish: TimeWish
    insurance_id: str | None


def check(
    clinic: Clinic,
    wish: TimeWish,
    service_id: str,
    doctor_id: str | None,
    insurance_id: str | None,
    language: str,
) -> Feasible:
    """The obstacles in these wishes, and the wishes without them (the days that cannot be,
    dropped; a plan that does not cover the service, dropped for a private booking)."""
    language = language_or_default(language)
    names = WEEKDAYS[language]
    doctor = clinic.doctor(doctor_id) if doctor_id else None
    doctors = [doctor] if doctor else clinic.doctors_for(service_id)
    service = clinic.service(service_id)
    not_working = _Asked(clinic, doctor, doctors, service.name(language) if service else "", names)
    obstacles: list[Obstacle] = []
    kept_dates = []
    for day in wish.dates:
        reason = _closed_reason(clinic, doctors, day)
        if reason is not None:
            obstacles.append(Obstacle("closed_on_date", {"date": say_date(day, language)}))
            if reason:
                obstacles[-1].fields["date"] += f" ({reason})"
        elif not any(_works_on(d, WEEKDAY_IDS[day.weekday()]) for d in doctors):
            obstacles.append(_not_working(not_working, WEEKDAY_IDS[day.weekday()]))
        else:
            kept_dates.append(day)
    kept_weekdays = []
    for weekday in wish.weekdays:
        if any(_works_on(d, weekday) for d in doctors):
            kept_weekdays.append(weekday)
        else:
            obstacles.append(_not_working(not_working, weekday))
    relaxed = replace(wish)
    if wish.dates and not kept_dates:
        relaxed = replace(relaxed, dates=[])
    elif wish.dates:
        relaxed = replace(relaxed, dates=kept_dates)
    if wish.weekdays and not kept_weekdays:
        relaxed = replace(relaxed, weekdays=[])
    elif wish.weekdays:
        relaxed = replace(relaxed, weekdays=kept_weekdays)
    plan = clinic.insurance(insurance_id) if insurance_id else None
    if plan is not None and not any(clinic.accepts(plan.id, d.id, service_id) for d in doctors):
        service = clinic.service(service_id)
        who = doctor.name if doctor else (service.name(language) if service else "")
        obstacles.append(Obstacle("insurance_not_covering", {"plan": plan.name, "service": who}))
        insurance_id = None
    return Feasible(obstacles, relaxed, insurance_id)


def _closed_reason(clinic: Clinic, doctors: list[Doctor], day: date) -> str | None:
    """The closure's reason when every doctor of the request is off that day, else None."""
    if not doctors or not all(clinic.is_closed(day, d.id) for d in doctors):
        return None
    for closure in clinic.closures:
        if closure.start <= day <= closure.last_day:
            return closure.reason
    return ""


def _works_on(doctor: Doctor, weekday: str) -> bool:
    return any(day.value == weekday for day in doctor.working_hours)


@dataclass(frozen=True)
class _Asked:
    """Who the request is for, to say why a weekday cannot be."""

    clinic: Clinic
    doctor: Doctor | None
    doctors: list[Doctor]
    service: str
    names: tuple[str, ...] | list[str]


def _not_working(asked: _Asked, weekday: str) -> Obstacle:
    """The doctor asked for is off that weekday; or no doctor of the service works it (the
    clinic may well be open: "the clinic is closed on Monday" was said of a clinic whose
    dermatologist alone is off on Mondays); or nobody works it: the clinic is closed."""
    names = asked.names
    day = names[WEEKDAY_IDS.index(weekday)]
    if asked.doctor is not None:
        days = ", ".join(names[WEEKDAY_IDS.index(d.value)] for d in asked.doctor.working_hours)
        return Obstacle(
            "doctor_not_on_day", {"doctor": asked.doctor.name, "day": day, "days": days}
        )
    if not any(_works_on(d, weekday) for d in asked.clinic.doctors):
        return Obstacle("closed_on_day", {"day": day})
    worked = {d.value for doctor in asked.doctors for d in doctor.working_hours}
    days = ", ".join(names[i] for i, w in enumerate(WEEKDAY_IDS) if w in worked)
    return Obstacle("service_not_on_day", {"service": asked.service, "day": day, "days": days})
