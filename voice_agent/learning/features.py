"""Features of an offer and of an appointment: plain dicts, identical at recording and scoring.

An offer's features describe the slot, the doctor and the request, never the patient: lead time,
weekday, time of day, whether it falls in the period asked, the doctor (one-hot through
scikit-learn's DictVectorizer), the doctor's load among the candidates, seniority and fit to the
service, previous doctor, insurance, language, and the rules' own score. The rank an offer was
said at is recorded beside the features (position bias is measured, not learned: see
docs/ranking.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from voice_agent.clinic.model import Clinic, Doctor, Service
from voice_agent.scheduling.preferences import Preferences
from voice_agent.scheduling.ranking import Candidate, RankingContext

Features = dict[str, float | str]
"""Numbers, or strings that DictVectorizer one-hot encodes (``doctor=dr-ana``)."""

OFFER_FEATURES = (
    "lead_days",
    "log_lead_days",
    "days_after_first",
    "weekday",
    "hour",
    "morning",
    "afternoon",
    "evening",
    "in_period_asked",
    "period_asked",
    "doctor",
    "load_share",
    "seniority",
    "levels_above_needed",
    "previous_doctor",
    "insurance",
    "speaks_language",
    "rules_score",
)
"""Every key an offer's features may have (a doctor id becomes ``doctor=<id>`` after encoding)."""

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def offer_features(
    candidate: Candidate,
    context: RankingContext,
    clinic: Clinic,
    *,
    rules_score: float,
    loads: Mapping[str, int],
) -> Features:
    """One candidate's features; ``loads`` are the candidates' doctors' loads (for the share)."""
    start = candidate.start
    now = context.now or candidate.slot.start
    lead = max((candidate.slot.start - now).total_seconds() / 86_400, 0.0)
    hour = start.hour + start.minute / 60
    doctor = candidate.doctor
    max_load = max(loads.values(), default=0)
    min_load = min(loads.values(), default=0)
    load = loads.get(doctor.id, 0)
    share = (load - min_load) / (max_load - min_load) if max_load > min_load else 0.0
    asked = context.asked
    return {
        "lead_days": round(lead, 4),
        "log_lead_days": round(math.log1p(lead), 4),
        "days_after_first": round(candidate.days_out, 4),
        "weekday": _WEEKDAYS[start.weekday()],
        "hour": round(hour, 3),
        "morning": float(hour < 12),
        "afternoon": float(12 <= hour < 17),
        "evening": float(hour >= 17),
        "in_period_asked": float(_in_period(context, clinic, candidate)),
        "period_asked": ",".join(sorted(asked.periods)) if asked and asked.periods else "any",
        "doctor": doctor.id,
        "load_share": round(share, 4),
        "seniority": float(doctor.qualification),
        "levels_above_needed": float(doctor.qualification - candidate.service.min_qualification),
        "previous_doctor": float(_previous(context, candidate.service) == doctor.id),
        "insurance": float(bool(asked and asked.insurance_id)),
        "speaks_language": float(_speaks(doctor, context.language)),
        "rules_score": round(rules_score, 4),
    }


def offers_features(
    candidates: Sequence[Candidate],
    context: RankingContext,
    clinic: Clinic,
    rules_scores: Sequence[float],
) -> list[Features]:
    """Features of a whole batch (the loads are compared among the batch's doctors)."""
    loads = {c.doctor.id: context.doctor_load.get(c.doctor.id, 0) for c in candidates}
    return [
        offer_features(c, context, clinic, rules_score=score, loads=loads)
        for c, score in zip(candidates, rules_scores, strict=True)
    ]


def appointment_features(
    *,
    start: datetime,
    booked_at: datetime,
    channel: str,
    clinic: Clinic,
    past_no_shows: int,
    past_attended: int,
    past_confirmed: int,
    confirmed: bool,
) -> Features:
    """Features of one appointment for the no-show model (the patient's history as counts, and
    whether the patient already confirmed this one)."""
    local = start.astimezone(clinic.tz)
    lead = max((start - booked_at).total_seconds() / 86_400, 0.0)
    past = past_no_shows + past_attended
    return {
        "lead_days": round(lead, 4),
        "log_lead_days": round(math.log1p(lead), 4),
        "weekday": _WEEKDAYS[local.weekday()],
        "hour": float(local.hour),
        "early_morning": float(local.hour < 9),
        "channel": channel,
        "past_no_shows": float(past_no_shows),
        "past_attended": float(past_attended),
        # Laplace-smoothed share, so one missed visit of one is not a certainty.
        "past_no_show_rate": round((past_no_shows + 0.5) / (past + 4), 4),
        "new_patient": float(past == 0),
        "past_confirmed": float(past_confirmed),
        "confirmed": float(confirmed),
    }


def _in_period(context: RankingContext, clinic: Clinic, candidate: Candidate) -> bool:
    """Inside the time wished: a soft wish when there is one, else the hard filter's."""
    wish: Preferences | None = context.soft
    if wish is None or not wish.has_time_filter:
        wish = context.asked
    if wish is None or not wish.has_time_filter:
        return False
    return wish.allows_time(clinic, candidate.start, candidate.end)


def _previous(context: RankingContext, service: Service) -> str | None:
    previous = context.previous_doctors
    return previous.get(service.id) or previous.get(service.specialty)


def _speaks(doctor: Doctor, language: str | None) -> bool:
    if not language:
        return False
    base = language.split("-")[0].lower()
    return any(spoken.split("-")[0].lower() == base for spoken in doctor.languages)
