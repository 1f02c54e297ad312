"""What the patient asked for ("next Tuesday afternoon, not with Dr. X"), as hard filters on slots.

`Preferences` is filled by an LLM tool call, so its fields are flat, obviously named and described.
Besides `matches` (one slot), `window` and `candidate_doctors` narrow the search *before* slots are
generated, so a request for one afternoon never scans the whole booking horizon.
All dates and times are local to the clinic.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from voice_agent.clinic.model import Clinic, Doctor, Weekday
from voice_agent.scheduling.availability import (
    BookingRules,
    Slot,
    booking_window,
    eligible_doctors,
)

_WEEKDAYS = tuple(Weekday)


class Preferences(BaseModel):
    """Hard constraints on the appointment time, doctor and health plan. Empty fields mean any."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dates: list[date] = Field(
        default_factory=list,
        description="Only these days (YYYY-MM-DD), e.g. 'the 3rd or the 5th'. Empty: any day.",
    )
    date_from: date | None = Field(
        default=None, description="First acceptable day (YYYY-MM-DD), inclusive."
    )
    date_to: date | None = Field(
        default=None, description="Last acceptable day (YYYY-MM-DD), inclusive."
    )
    weekdays: list[Weekday] = Field(
        default_factory=list, description="Only these weekdays. Empty: any weekday."
    )
    exclude_weekdays: list[Weekday] = Field(
        default_factory=list, description="Weekdays the patient cannot come, e.g. 'not Monday'."
    )
    exclude_dates: list[date] = Field(
        default_factory=list, description="Days (YYYY-MM-DD) the patient cannot come."
    )
    periods: list[str] = Field(
        default_factory=list,
        description="Periods of the day by id (morning, afternoon, evening); the appointment "
        "starts inside one of them. Empty: any time.",
    )
    earliest: time | None = Field(
        default=None, description="The appointment starts at or after this local time (HH:MM)."
    )
    latest: time | None = Field(
        default=None, description="The appointment is over by this local time (HH:MM)."
    )
    doctor_id: str | None = Field(default=None, description="Only this doctor (doctor id).")
    specialty: str | None = Field(
        default=None, description="Only doctors of this specialty (specialty id)."
    )
    insurance_id: str | None = Field(
        default=None, description="The patient's health plan: only doctors it covers."
    )

    @field_validator("earliest", "latest")
    @classmethod
    def _local_time(cls, value: time | None) -> time | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("give a local clock time without a timezone, e.g. 15:00")
        return value

    @model_validator(mode="after")
    def _satisfiable(self) -> Preferences:
        """Refuse contradictions with a message the model can act on."""
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ValueError(f"date_to {self.date_to} is before date_from {self.date_from}")
        if self.earliest and self.latest and self.latest <= self.earliest:
            raise ValueError(f"latest {self.latest} must be after earliest {self.earliest}")
        if self.weekdays and set(self.weekdays) <= set(self.exclude_weekdays):
            raise ValueError("every weekday asked for is also excluded")
        if self.dates and not any(self.allows_day(day) for day in self.dates):
            raise ValueError("none of the dates asked for is allowed by the other day preferences")
        return self

    def allows_day(self, day: date) -> bool:
        """Whether the day-level preferences (dates, range, weekdays, exclusions) allow ``day``."""
        if self.dates and day not in self.dates:
            return False
        if (self.date_from and day < self.date_from) or (self.date_to and day > self.date_to):
            return False
        weekday = _WEEKDAYS[day.weekday()]
        if self.weekdays and weekday not in self.weekdays:
            return False
        return weekday not in self.exclude_weekdays and day not in self.exclude_dates

    def allows_time(self, clinic: Clinic, start: datetime, end: datetime) -> bool:
        """Whether local ``start``/``end`` fit the periods and earliest/latest preferences."""
        clock = start.time()
        if self.earliest and clock < self.earliest:
            return False
        if self.latest and end.replace(tzinfo=None) > datetime.combine(start.date(), self.latest):
            return False
        if not self.periods:
            return True
        periods = clinic.periods_by_id
        return any(
            (period := periods.get(pid)) is not None and period.start <= clock < period.end
            for pid in self.periods
        )

    @property
    def has_day_filter(self) -> bool:
        day_fields = (self.dates, self.date_from, self.date_to, self.weekdays)
        return any(day_fields) or bool(self.exclude_weekdays or self.exclude_dates)

    @property
    def has_time_filter(self) -> bool:
        return bool(self.periods or self.earliest or self.latest)

    def problems(self, clinic: Clinic) -> list[str]:
        """References this clinic does not know (period, doctor, specialty, insurance ids)."""
        found = [
            f"unknown period {pid!r}; use one of {sorted(clinic.periods_by_id)}"
            for pid in self.periods
            if pid not in clinic.periods_by_id
        ]
        if self.doctor_id and clinic.doctor(self.doctor_id) is None:
            found.append(f"unknown doctor {self.doctor_id!r}")
        specialties = {s for doctor in clinic.doctors for s in doctor.specialties}
        if self.specialty and self.specialty not in specialties:
            found.append(f"unknown specialty {self.specialty!r}; use one of {sorted(specialties)}")
        if self.insurance_id and clinic.insurance(self.insurance_id) is None:
            found.append(f"unknown insurance {self.insurance_id!r}")
        return found


def window(
    prefs: Preferences,
    clinic: Clinic,
    now: datetime,
    rules: BookingRules = BookingRules.policy,
) -> tuple[date, date]:
    """The local days worth scanning: the rules' booking window narrowed by the preferences.

    Empty when ``last < first`` (e.g. a date range that ended yesterday).
    """
    first, last = booking_window(clinic, now, rules)
    if prefs.date_from:
        first = max(first, prefs.date_from)
    if prefs.date_to:
        last = min(last, prefs.date_to)
    if prefs.dates:
        first = max(first, min(prefs.dates))
        last = min(last, max(prefs.dates))
    if prefs.weekdays:
        allowed = {weekday.number for weekday in prefs.weekdays}
        for _ in range(6):
            if first.weekday() not in allowed:
                first += timedelta(days=1)
            if last.weekday() not in allowed:
                last -= timedelta(days=1)
    return first, last


def day_filter(prefs: Preferences) -> Callable[[date], bool] | None:
    """A per-day predicate for `free_slots`, or None when every day in the window is allowed."""
    return prefs.allows_day if prefs.has_day_filter else None


def candidate_doctors(prefs: Preferences, clinic: Clinic, service_id: str) -> list[Doctor]:
    """Doctors who perform the service, qualify, and fit the doctor/specialty/insurance wishes."""
    service = clinic.service(service_id)
    if service is None:
        return []
    return [
        doctor
        for doctor in eligible_doctors(clinic, service)
        if _doctor_fits(prefs, clinic, doctor, service_id)
    ]


def matches(prefs: Preferences, slot: Slot, clinic: Clinic) -> bool:
    """Whether a slot satisfies every hard preference."""
    doctor = clinic.doctor(slot.doctor_id)
    if doctor is None or not _doctor_fits(prefs, clinic, doctor, slot.service_id):
        return False
    start = slot.start.astimezone(clinic.tz)
    if not prefs.allows_day(start.date()):
        return False
    return prefs.allows_time(clinic, start, slot.end.astimezone(clinic.tz))


def _doctor_fits(prefs: Preferences, clinic: Clinic, doctor: Doctor, service_id: str) -> bool:
    if prefs.doctor_id and doctor.id != prefs.doctor_id:
        return False
    if prefs.specialty and prefs.specialty not in doctor.specialties:
        return False
    return not prefs.insurance_id or clinic.accepts(prefs.insurance_id, doctor.id, service_id)
