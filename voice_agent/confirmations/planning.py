"""When to ask a patient to confirm: pure functions of the clinic policy and the clock.

Contact happens only inside the clinic's contact hours, on contact days, never on a day the whole
clinic is closed. Hours are wall-clock times in the clinic's timezone, so a DST change moves the
UTC instant of "09:00" and never the local one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from voice_agent.clinic.model import Clinic, Weekday

SEARCH_DAYS = 31
HIGH_RISK_SEQ = 98
"""Sequence number of the extra call for an appointment at high risk of a no-show."""


@dataclass(frozen=True)
class PlannedStep:
    seq: int
    via: str
    due_at: datetime


def _at(day: date, moment: time, clinic: Clinic) -> datetime:
    """A local wall-clock time as an aware UTC instant (a time in a DST gap moves forward)."""
    return datetime.combine(day, moment, tzinfo=clinic.tz).astimezone(UTC)


def _contact_day(day: date, clinic: Clinic) -> bool:
    policy = clinic.confirmations
    if Weekday.of(day) not in policy.contact_days:
        return False
    return not any(c.covers(day, "") and not c.doctors for c in clinic.closures)


def _window(day: date, clinic: Clinic) -> tuple[datetime, datetime]:
    hours = clinic.confirmations.contact_hours
    return _at(day, hours.start, clinic), _at(day, hours.end, clinic)


def contact_allowed(moment: datetime, clinic: Clinic) -> bool:
    day = moment.astimezone(clinic.tz).date()
    if not _contact_day(day, clinic):
        return False
    opens, closes = _window(day, clinic)
    return opens <= moment < closes


def next_contact_time(moment: datetime, clinic: Clinic) -> datetime | None:
    """The earliest allowed instant at or after ``moment`` (None if none within a month)."""
    first = moment.astimezone(clinic.tz).date()
    for offset in range(SEARCH_DAYS):
        day = first + timedelta(days=offset)
        if not _contact_day(day, clinic):
            continue
        opens, closes = _window(day, clinic)
        if moment < closes:
            return max(moment, opens)
    return None


def last_contact_time(moment: datetime, clinic: Clinic) -> datetime | None:
    """The latest allowed instant at or before ``moment`` (None if none within a month)."""
    last = moment.astimezone(clinic.tz).date()
    for offset in range(SEARCH_DAYS):
        day = last - timedelta(days=offset)
        if not _contact_day(day, clinic):
            continue
        opens, closes = _window(day, clinic)
        if moment >= opens:
            return min(moment, closes - timedelta(minutes=1))
    return None


def plan_steps(
    clinic: Clinic,
    start: datetime,
    now: datetime,
    *,
    booked_at: datetime | None = None,
    no_show_risk: float | None = None,
) -> list[PlannedStep]:
    """The steps for an appointment at ``start`` planned at ``now``.

    A step goes to the first contact time at or after its ideal time; if that is too close to the
    appointment (``min_lead_minutes``), to the last contact time before that limit. A step whose
    ideal time falls within ``quiet_after_booking_hours`` of the booking is not planned: the
    patient has just booked and got the booking confirmation.

    ``booked_at`` (default ``now``) is earlier when steps are planned late for an appointment
    booked before (confirmations switched on, or an upgrade): of the steps whose ideal time has
    already passed only the latest is kept, due at the next contact time, so the patient gets one
    late request rather than several at once.

    ``no_show_risk`` at or above the policy's ``high_risk_threshold`` adds one more call,
    ``high_risk_call_hours_before`` the start (unless a planned call is already due then).
    """
    policy = clinic.confirmations
    if not policy.enabled:
        return []
    deadline = start - timedelta(minutes=policy.min_lead_minutes)
    earliest = (booked_at or now) + timedelta(hours=policy.quiet_after_booking_hours)
    planned: list[PlannedStep] = []
    overdue: tuple[datetime, int, str] | None = None  # (ideal, seq, via) of the latest passed
    for seq, step in enumerate(policy.steps):
        ideal = start - timedelta(hours=step.hours_before)
        if ideal < earliest or ideal >= deadline:
            continue
        if ideal < now:
            if overdue is None or ideal > overdue[0]:
                overdue = (ideal, seq, step.via)
            continue
        due = _due(ideal, deadline, clinic)
        if due is not None and due >= now:
            planned.append(PlannedStep(seq, step.via, due))
    if overdue is not None:
        due = _due(now, deadline, clinic)
        # A later step due as soon as the late one would be makes the late one pointless.
        if due is not None and due >= now and all(p.due_at > due for p in planned):
            planned.append(PlannedStep(overdue[1], overdue[2], due))
    threshold = policy.high_risk_threshold
    if threshold is not None and no_show_risk is not None and no_show_risk >= threshold:
        ideal = start - timedelta(hours=policy.high_risk_call_hours_before)
        due = _due(ideal, deadline, clinic) if earliest <= ideal < deadline else None
        calls = {p.due_at for p in planned if p.via == "call"}
        if due is not None and due >= now and due not in calls:
            planned.append(PlannedStep(HIGH_RISK_SEQ, "call", due))
    return sorted(planned, key=lambda p: p.due_at)


def _due(ideal: datetime, deadline: datetime, clinic: Clinic) -> datetime | None:
    due = next_contact_time(ideal, clinic)
    if due is None or due > deadline:
        due = last_contact_time(deadline, clinic)
    return due


def retry_time(
    clinic: Clinic, now: datetime, start: datetime, attempts_made: int
) -> datetime | None:
    """When to try a call again after ``attempts_made`` failures; None if no time is left."""
    policy = clinic.confirmations
    if attempts_made >= policy.call_attempts:
        return None
    due = next_contact_time(now + timedelta(minutes=policy.retry_after(attempts_made)), clinic)
    deadline = start - timedelta(minutes=policy.min_lead_minutes)
    if due is None or due > deadline:
        return None
    return due
