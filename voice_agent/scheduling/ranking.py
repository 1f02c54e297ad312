"""Choose the few slots worth offering on the phone, each with the reasons it was chosen.

A caller can only hear three to five options, so ranking matters more than completeness: the scan
stops once a few matching days have produced enough candidates, candidates are scored by a
pluggable `Scorer`, and the pick is diversified so the options are not five neighbouring slots of
one doctor. Reasons are codes with weights, so the conversation layer can say the main one in the
caller's language ("you saw Dr. Ana before", "the earliest time").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from voice_agent.clinic.model import Clinic, Doctor, Service
from voice_agent.scheduling.availability import Interval, Slot, free_slots_by_day
from voice_agent.scheduling.preferences import (
    Preferences,
    candidate_doctors,
    day_filter,
    window,
)

# Default weights. Soonness is the backbone (2.0 for the first possible slot, halving every
# 3 days, so waiting 3 days costs 1.0 and a week about 1.6). A stated wish or the patient's
# language is worth a few days of waiting, continuity of care about a week or more; load and
# seniority only break near-ties.
PREVIOUS_DOCTOR_WEIGHT = 3.0
"""The patient saw this doctor for this service or specialty: continuity of care wins a week."""
SOONNESS_WEIGHT = 2.0
"""Score of the earliest candidate; later ones decay exponentially."""
SOONNESS_HALF_LIFE_DAYS = 3.0
"""Waiting this many more days halves the soonness score."""
PREFERRED_PERIOD_WEIGHT = 1.5
"""Matches a soft time-of-day wish (RankingContext.soft periods/earliest/latest)."""
PREFERRED_DAY_WEIGHT = 1.5
"""Matches a soft day wish (RankingContext.soft dates/weekdays/range/exclusions)."""
LANGUAGE_WEIGHT = 1.5
"""The doctor speaks the caller's language (only counted when some candidate doctor does not)."""
LIGHT_LOAD_WEIGHT = 0.75
"""For the least loaded doctor, scaled down to 0 for the most loaded one among the candidates."""
QUALIFICATION_FIT_WEIGHT = 0.5
"""For a doctor exactly as senior as the service needs, down to 0 for four levels above it."""

MAX_PER_DOCTOR_DAY = 2
"""Diversity: at most this many offers of one doctor on one day, unless nothing else is free.
One doctor also gets at most about half of the offers while another doctor is free."""
_PER_BUCKET = 2
"""Candidates kept per doctor, day, period of the day and soft-preference match."""
_MIN_MATCHING_DAYS = 3
"""The scan covers at least this many days with a match, so later days can compete."""
_CANDIDATES_PER_OFFER = 4
"""And at least ``limit`` × this many candidates."""
_LOOKAHEAD_DAYS = 14
"""How far past the first matching day the scan may go looking for a wanted doctor or day."""


class ReasonCode(StrEnum):
    previous_doctor = "previous_doctor"
    earliest = "earliest"
    preferred_period = "preferred_period"
    preferred_day = "preferred_day"
    light_load = "light_load"
    qualification_fit = "qualification_fit"
    speaks_language = "speaks_language"


_PHRASES: dict[str, str] = {
    ReasonCode.previous_doctor: "seen before",
    ReasonCode.earliest: "soonest",
    ReasonCode.preferred_period: "preferred time",
    ReasonCode.preferred_day: "preferred day",
    ReasonCode.light_load: "lighter schedule",
    ReasonCode.qualification_fit: "right seniority",
    ReasonCode.speaks_language: "speaks your language",
}


@dataclass(frozen=True, slots=True)
class Reason:
    """One signal behind an offer and how much it added to the score."""

    code: str
    weight: float


@dataclass(frozen=True, slots=True)
class Offer:
    """A ranked slot; ``reasons`` are sorted by weight, the main one first."""

    slot: Slot
    score: float
    reasons: tuple[Reason, ...]
    features: Mapping[str, float | str] | None = None
    """What a learned scorer saw (recorded with the offer as learning data), else None."""

    def summary(self, clinic: Clinic) -> str:
        """One English line for the CLI, e.g. 'Tue 24 Nov 09:00-09:30 Dr. Carlos Lima (soonest)'."""
        start = self.slot.start.astimezone(clinic.tz)
        end = self.slot.end.astimezone(clinic.tz)
        doctor = clinic.doctor(self.slot.doctor_id)
        name = doctor.name if doctor else self.slot.doctor_id
        why = ", ".join(_PHRASES.get(r.code, r.code) for r in self.reasons)
        text = f"{start:%a %d %b %Y %H:%M}-{end:%H:%M} {name}"
        if self.slot.hospital_id:
            hospital = clinic.hospitals_by_id.get(self.slot.hospital_id)
            text += f" at {hospital.name if hospital else self.slot.hospital_id}"
        return f"{text} ({why}; score {self.score:.2f})" if why else text


@dataclass(frozen=True, slots=True)
class RankingContext:
    """What we know about the caller and the clinic's week beyond the hard preferences."""

    previous_doctors: Mapping[str, str] = field(default_factory=dict)
    """Service id or specialty id -> the doctor the patient saw for it last."""
    doctor_load: Mapping[str, int] = field(default_factory=dict)
    """Doctor id -> appointments already booked in the search window."""
    language: str | None = None
    """The caller's language code (pt-BR, en, ru)."""
    soft: Preferences | None = None
    """Wishes that raise a slot's score instead of filtering ("mornings would be nicer")."""
    now: datetime | None = None
    """When the search runs (a learned scorer reads the lead time from it)."""
    asked: Preferences | None = None
    """The hard preferences of the search (a learned scorer reads the period asked)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A free slot with the features a scorer needs, computed once."""

    slot: Slot
    start: datetime
    """Local start in the clinic's timezone."""
    end: datetime
    """Local end in the clinic's timezone."""
    doctor: Doctor
    service: Service
    days_out: float
    """Days after the earliest candidate's start (0 for the earliest)."""


class Scorer(Protocol):
    """Scores a batch of candidates (a batch, so a learned model can score them at once)."""

    def score(
        self, candidates: Sequence[Candidate], context: RankingContext, clinic: Clinic
    ) -> list[Offer]:
        """One offer per candidate, in the same order."""
        ...


@dataclass(frozen=True, slots=True)
class DefaultScorer:
    """A transparent weighted sum; each weight is a module constant documented above.

    Signals that every candidate shares (everyone speaks Portuguese, one doctor only) are left
    out: they cannot change the order and would only crowd the reasons. Hence over-qualification
    costs something only when a better-fitting doctor is among the candidates: a head of
    department is offered for a routine visit, just after an equally early resident.
    """

    previous_doctor: float = PREVIOUS_DOCTOR_WEIGHT
    soonness: float = SOONNESS_WEIGHT
    soonness_half_life_days: float = SOONNESS_HALF_LIFE_DAYS
    preferred_period: float = PREFERRED_PERIOD_WEIGHT
    preferred_day: float = PREFERRED_DAY_WEIGHT
    language: float = LANGUAGE_WEIGHT
    light_load: float = LIGHT_LOAD_WEIGHT
    qualification_fit: float = QUALIFICATION_FIT_WEIGHT

    def score(
        self, candidates: Sequence[Candidate], context: RankingContext, clinic: Clinic
    ) -> list[Offer]:
        doctors = {c.doctor.id: c.doctor for c in candidates}
        loads = {d: context.doctor_load.get(d, 0) for d in doctors}
        max_load = max(loads.values(), default=0)
        min_load = min(loads.values(), default=0)
        speaks = {d: _speaks(doc, context.language) for d, doc in doctors.items()}
        use_language = len(set(speaks.values())) > 1
        use_fit = len({doc.qualification for doc in doctors.values()}) > 1
        soft = context.soft
        soft_day = soft is not None and soft.has_day_filter
        soft_time = soft is not None and soft.has_time_filter
        offers = []
        for c in candidates:
            doctor_id = c.doctor.id
            reasons: list[Reason] = []
            if _previous(context, c.service) == doctor_id:
                reasons.append(Reason(ReasonCode.previous_doctor, self.previous_doctor))
            decay = 0.5 ** (c.days_out / self.soonness_half_life_days)
            reasons.append(Reason(ReasonCode.earliest, self.soonness * decay))
            if soft_day and soft.allows_day(c.start.date()):  # type: ignore[union-attr]
                reasons.append(Reason(ReasonCode.preferred_day, self.preferred_day))
            if soft_time and soft.allows_time(clinic, c.start, c.end):  # type: ignore[union-attr]
                reasons.append(Reason(ReasonCode.preferred_period, self.preferred_period))
            if use_language and speaks[doctor_id]:
                reasons.append(Reason(ReasonCode.speaks_language, self.language))
            if max_load > min_load:
                share = (max_load - loads[doctor_id]) / (max_load - min_load)
                reasons.append(Reason(ReasonCode.light_load, self.light_load * share))
            if use_fit:
                levels_above = c.doctor.qualification - c.service.min_qualification
                fit = 1.0 - min(levels_above, 4) / 4
                reasons.append(Reason(ReasonCode.qualification_fit, self.qualification_fit * fit))
            kept = tuple(
                sorted(
                    (Reason(r.code, round(r.weight, 4)) for r in reasons if r.weight >= 0.005),
                    key=lambda r: (-r.weight, r.code),
                )
            )
            offers.append(Offer(c.slot, round(sum(r.weight for r in reasons), 6), kept))
        return offers


DEFAULT_SCORER = DefaultScorer()


def rank_offers(
    clinic: Clinic,
    service_id: str,
    prefs: Preferences,
    *,
    now: datetime,
    busy: Mapping[str, Sequence[Interval]],
    context: RankingContext | None = None,
    limit: int = 5,
    scorer: Scorer = DEFAULT_SCORER,
) -> list[Offer]:
    """The best ``limit`` free slots for the service under the hard preferences, best first.

    Scans day by day and stops once it has candidates from a few matching days (further while a
    previous doctor or a soft wish is still unseen, up to two weeks past the first match).
    Ties break by start time, then doctor id, so the same input always gives the same offers.
    Raises ValueError for an unknown service.
    """
    service = clinic.service(service_id)
    if service is None:
        raise ValueError(f"unknown service {service_id!r}")
    context = context or RankingContext()
    first, last = window(prefs, clinic, now)
    doctors = candidate_doctors(prefs, clinic, service_id)
    if last < first or not doctors or limit <= 0:
        return []
    candidates = _collect(clinic, service, prefs, doctors, now, busy, context, first, last, limit)
    if not candidates:
        return []
    offers = scorer.score(candidates, context, clinic)
    return _diverse(offers, clinic, limit)


def service_for(clinic: Clinic, specialty: str) -> Service | None:
    """The specialty's plain consultation, for a caller who names only the specialty.

    Prefers a service that calls itself a consultation (id or name), then the least demanding
    and shortest one: an ECG is shorter than a cardiology consultation but not what "I need a
    cardiologist" means.
    """
    services = [s for s in clinic.services if s.specialty == specialty]
    if not services:
        return None
    return min(
        services,
        key=lambda s: (not _is_consultation(s), s.min_qualification, s.duration_minutes, s.id),
    )


def _collect(
    clinic: Clinic,
    service: Service,
    prefs: Preferences,
    doctors: list[Doctor],
    now: datetime,
    busy: Mapping[str, Sequence[Interval]],
    context: RankingContext,
    first: date,
    last: date,
    limit: int,
) -> list[Candidate]:
    tz = clinic.tz
    periods = clinic.periods
    by_id = {doctor.id: doctor for doctor in doctors}
    previous = _previous(context, service)
    missing_previous = previous in by_id
    soft = context.soft
    soft_time = soft is not None and soft.has_time_filter
    missing_soft = soft is not None and (soft.has_day_filter or soft_time)
    time_filter = prefs.has_time_filter
    wanted = limit * _CANDIDATES_PER_OFFER
    found: list[tuple[Slot, datetime, datetime]] = []
    reserve: list[tuple[Slot, datetime, datetime]] = []  # beyond the bucket caps, if too few
    first_match: date | None = None
    matching_days = 0
    batches = free_slots_by_day(
        clinic,
        service.id,
        now=now,
        busy=busy,
        first_day=first,
        last_day=last,
        doctor_ids=by_id,
        days=day_filter(prefs),
    )
    for day, slots in batches:
        if first_match is not None and (day - first_match).days > _LOOKAHEAD_DAYS:
            break
        kept: Counter[tuple[str, str | None, bool]] = Counter()
        soft_day_ok = soft is not None and soft.allows_day(day)
        before = len(found)
        for slot in slots:
            start = slot.start.astimezone(tz)
            end = slot.end.astimezone(tz)
            if time_filter and not prefs.allows_time(clinic, start, end):
                continue
            clock = start.time()
            period = next((p.id for p in periods if p.start <= clock < p.end), None)
            soft_ok = soft_time and soft.allows_time(clinic, start, end)  # type: ignore[union-attr]
            bucket = (slot.doctor_id, period, soft_ok)
            if kept[bucket] >= _PER_BUCKET:
                if len(reserve) < limit:
                    reserve.append((slot, start, end))
                continue
            kept[bucket] += 1
            found.append((slot, start, end))
            if slot.doctor_id == previous:
                missing_previous = False
            if missing_soft and soft_day_ok and (soft_ok or not soft_time):
                missing_soft = False
        if len(found) > before:
            matching_days += 1
            first_match = first_match or day
        if (
            matching_days >= _MIN_MATCHING_DAYS
            and len(found) >= wanted
            and not missing_previous
            and not missing_soft
        ):
            break
    if len(found) < limit:
        found.extend(reserve[: limit - len(found)])
        found.sort(key=lambda item: (item[0].start, item[0].doctor_id))
    if not found:
        return []
    origin = found[0][0].start
    return [
        Candidate(
            slot,
            start,
            end,
            by_id[slot.doctor_id],
            service,
            (slot.start - origin).total_seconds() / 86_400,
        )
        for slot, start, end in found
    ]


def _diverse(offers: list[Offer], clinic: Clinic, limit: int) -> list[Offer]:
    """Best first, but while others remain: at most `MAX_PER_DOCTOR_DAY` per doctor and day,
    and at most about half of the offers (`_per_doctor_cap`) for one doctor overall."""
    tz = clinic.tz
    ordered = sorted(offers, key=lambda o: (-o.score, o.slot.start, o.slot.doctor_id))
    per_doctor_cap = max(MAX_PER_DOCTOR_DAY, (limit + 1) // 2)
    picked: list[Offer] = []
    spare: list[Offer] = []
    per_doctor_day: Counter[tuple[str, date]] = Counter()
    per_doctor: Counter[str] = Counter()
    for offer in ordered:
        doctor_id = offer.slot.doctor_id
        key = (doctor_id, offer.slot.start.astimezone(tz).date())
        if per_doctor_day[key] < MAX_PER_DOCTOR_DAY and per_doctor[doctor_id] < per_doctor_cap:
            per_doctor_day[key] += 1
            per_doctor[doctor_id] += 1
            picked.append(offer)
            if len(picked) == limit:
                return picked
        elif len(spare) < limit:
            spare.append(offer)
    return picked + spare[: limit - len(picked)]


def _previous(context: RankingContext, service: Service) -> str | None:
    previous = context.previous_doctors
    return previous.get(service.id) or previous.get(service.specialty)


def _speaks(doctor: Doctor, language: str | None) -> bool:
    if not language:
        return False
    base = language.split("-")[0].lower()
    return any(spoken.split("-")[0].lower() == base for spoken in doctor.languages)


def _is_consultation(service: Service) -> bool:
    words = (service.id, *service.names.values())
    return any(stem in word.lower() for word in words for stem in ("consult", "консульт", "приём"))
