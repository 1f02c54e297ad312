"""The clinic as immutable values. Everything the slot engine and the tools know about a clinic.

Ids are short slugs chosen by the clinic (``dr-ana-souza``, ``cardio-consult``); appointments keep
them, so re-loading a changed file never orphans an appointment's references silently.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
SUPPORTED_LANGUAGES = ("pt-BR", "ru", "en")


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"

    @property
    def number(self) -> int:
        """Monday is 0, as in ``date.weekday()``."""
        return list(Weekday).index(self)

    @classmethod
    def of(cls, day: date) -> Weekday:
        return list(Weekday)[day.weekday()]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Localized = dict[str, str]
"""Text per language code (``pt-BR``, ``ru``, ``en``)."""


def _on_grid(value: time) -> time:
    """Times sit on a 5-minute grid: the booking store claims time in 5-minute cells."""
    if value.minute % 5 or value.second or value.microsecond:
        raise ValueError(f"{value} is not on a 5-minute boundary")
    return value


GridTime = Annotated[time, AfterValidator(_on_grid)]


class TimeRange(Frozen):
    start: GridTime
    end: GridTime

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class WorkingDay(Frozen):
    """Hours of one weekday at one place, with breaks inside them."""

    start: GridTime
    end: GridTime
    breaks: tuple[TimeRange, ...] = ()
    hospital: Slug | None = Field(
        default=None, description="Where the doctor attends then; the clinic itself if empty."
    )

    @model_validator(mode="after")
    def _consistent(self) -> WorkingDay:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        for pause in self.breaks:
            if pause.start < self.start or pause.end > self.end:
                raise ValueError(f"break {pause.start}-{pause.end} is outside working hours")
        return self


class Hospital(Frozen):
    id: Slug
    name: str
    address: str
    phone: str | None = None


class Insurance(Frozen):
    """A convênio / health plan. Acceptance is per doctor and service (empty = all of them)."""

    id: Slug
    name: str
    synonyms: tuple[str, ...] = ()
    doctors: tuple[Slug, ...] = ()
    services: tuple[Slug, ...] = ()


class Service(Frozen):
    id: Slug
    names: Localized
    synonyms: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    specialty: Slug
    duration_minutes: int = Field(gt=0, le=480, multiple_of=5)
    private_price: Decimal = Field(ge=0)
    insurance_prices: dict[Slug, Decimal] = Field(
        default_factory=dict, description="Co-payment per insurance; 0 means fully covered."
    )
    min_qualification: int = Field(
        default=1, ge=1, le=5, description="Least seniority a doctor needs for this service."
    )
    description: Localized = Field(default_factory=dict)

    def name(self, language: str) -> str:
        return self.names.get(language) or next(iter(self.names.values()))


class Doctor(Frozen):
    id: Slug
    name: str
    specialties: tuple[Slug, ...]
    services: tuple[Slug, ...]
    qualification: int = Field(ge=1, le=5, description="1 = resident … 5 = head of department.")
    title: Localized = Field(default_factory=dict, description="e.g. 'Cardiologista, CRM-SP 123'")
    hospitals: tuple[Slug, ...] = ()
    slot_minutes: int = Field(default=30, gt=0, le=240, multiple_of=5)
    working_hours: dict[Weekday, tuple[WorkingDay, ...]]
    languages: tuple[str, ...] = ()
    calendar_id: str | None = Field(default=None, description="External calendar of the doctor.")
    prices: dict[Slug, Decimal] = Field(
        default_factory=dict,
        description="The doctor's own private price for some of his services (a senior and a "
        "junior cardiologist at different prices); the service's price otherwise.",
    )


class Period(Frozen):
    """A named period of the day (morning, afternoon, evening) and its synonyms per language."""

    id: Slug
    start: time
    end: time
    names: Localized = Field(default_factory=dict)


class Closure(Frozen):
    """A holiday or closure: the whole clinic, or only some doctors, over a span of days."""

    start: date
    end: date | None = None
    reason: str = ""
    doctors: tuple[Slug, ...] = ()

    @property
    def last_day(self) -> date:
        return self.end or self.start

    def covers(self, day: date, doctor_id: str) -> bool:
        if not (self.start <= day <= self.last_day):
            return False
        return not self.doctors or doctor_id in self.doctors


class BookingPolicy(Frozen):
    min_notice_minutes: int = Field(default=120, ge=0)
    horizon_days: int = Field(default=90, ge=1, le=730)
    start_tomorrow: bool = Field(
        default=True, description="Offer slots from the next day on, as clinics usually do."
    )
    cancel_notice_minutes: int = Field(default=0, ge=0)


class ConfirmationStepPolicy(Frozen):
    """One step: a WhatsApp message or a phone call, some hours before the appointment."""

    via: str = Field(pattern=r"^(whatsapp|call)$")
    hours_before: float = Field(gt=0, le=24 * 14)


class RetentionPolicy(Frozen):
    """How long each kind of patient data is kept (LGPD / 152-FZ: no longer than needed).

    Enforced by a periodic job and by `voice-agent privacy purge`; appointments and the
    interaction log's facts (what happened, when) are the clinic's records and are kept.
    """

    transcripts_days: int = Field(
        default=90, ge=1, description="What caller and receptionist said in calls."
    )
    conversations_days: int = Field(
        default=180, ge=1, description="Text and no-AI voice conversation states, by last use."
    )
    call_events_days: int = Field(
        default=365, ge=1, description="Every other call event, and the calls' caller numbers."
    )
    interaction_details_days: int = Field(
        default=730, ge=1, description="Free text of the interaction log (the facts stay)."
    )
    outbox_days: int = Field(
        default=30, ge=1, description="Delivered or dead side effects (message texts)."
    )


class ConfirmationPolicy(Frozen):
    """How and when patients are asked to confirm, and when the clinic may contact them."""

    enabled: bool = True
    steps: tuple[ConfirmationStepPolicy, ...] = (
        ConfirmationStepPolicy(via="whatsapp", hours_before=48),
        ConfirmationStepPolicy(via="call", hours_before=24),
    )
    contact_hours: TimeRange = TimeRange(start=time(9, 0), end=time(20, 0))
    """Local time (clinic timezone) within which messages are sent and calls placed."""
    contact_days: tuple[Weekday, ...] = (
        Weekday.mon,
        Weekday.tue,
        Weekday.wed,
        Weekday.thu,
        Weekday.fri,
        Weekday.sat,
    )
    min_lead_minutes: int = Field(
        default=120, ge=0, description="No confirmation step closer than this to the start."
    )
    quiet_after_booking_hours: float = Field(
        default=12,
        ge=0,
        description="No step in the first hours after booking: the patient has just booked.",
    )
    call_attempts: int = Field(default=3, ge=1, le=10)
    retry_minutes: tuple[int, ...] = Field(
        default=(30, 120), description="Wait before attempt 2, 3, … (the last value repeats)."
    )
    whatsapp_fallback: bool = Field(
        default=True, description="A WhatsApp message when every call attempt failed."
    )

    def retry_after(self, attempts_made: int) -> int:
        """Minutes to wait after ``attempts_made`` unsuccessful attempts."""
        if not self.retry_minutes:
            return 60
        return self.retry_minutes[min(attempts_made, len(self.retry_minutes)) - 1]


EmergencyNumber = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{1,19}$")]

COUNTRY_EMERGENCY: dict[str, dict[str, object]] = {
    "BR": {"number": "192", "service": {"pt-BR": "SAMU", "en": "SAMU", "ru": "SAMU"},
           "crisis_line": "188", "crisis_service": {"pt-BR": "CVV", "en": "CVV", "ru": "CVV"}},
    "RU": {"number": "112", "ambulance": "103"},
    "US": {"number": "911", "crisis_line": "988"},
    "PT": {"number": "112"},
    "GB": {"number": "999"},
}  # fmt: skip
"""Per-country defaults; elsewhere 112, which mobile phones route to emergency services."""


class EmergencyPolicy(Frozen):
    """Who a patient with a red flag is told to call, and (optionally) the clinic's own words.

    The texts live in ``prompts/<language>/emergency.yaml``; ``message`` and ``crisis_message``
    replace them per language ({number}, {ambulance}, {crisis_line} are filled in).
    """

    number: EmergencyNumber = Field(description="The emergency number (Brazil: SAMU 192).")
    service: Localized = Field(default_factory=dict, description="Its name, e.g. SAMU.")
    ambulance: EmergencyNumber | None = Field(
        default=None, description="A separate ambulance number, if any (Russia: 103)."
    )
    crisis_line: EmergencyNumber | None = Field(
        default=None, description="For suicidal thoughts (Brazil: CVV 188)."
    )
    crisis_service: Localized = Field(default_factory=dict)
    message: Localized = Field(default_factory=dict)
    crisis_message: Localized = Field(default_factory=dict)
    alert_staff: bool = Field(default=True, description="WhatsApp alert to doctor_whatsapp.")

    @classmethod
    def for_country(cls, country: str, legacy_number: str | None = None) -> EmergencyPolicy:
        fallback: dict[str, object] = {"number": "112"}
        defaults = dict(COUNTRY_EMERGENCY.get(country.upper(), fallback))
        if legacy_number and legacy_number not in (defaults["number"], defaults.get("ambulance")):
            defaults["number"] = legacy_number
        return cls.model_validate(defaults)


class Clinic(Frozen):
    name: str
    timezone: str
    country: str = Field(min_length=2, max_length=2, description="ISO country for phone parsing.")
    languages: tuple[str, ...]
    default_language: str
    address: str
    phone: str
    staff_phone: str = Field(description="Where calls are transferred to a person.")
    doctor_whatsapp: str | None = Field(default=None, description="Alerts go here.")
    emergency_number: str = Field(
        default="", description="The emergency number; filled from `emergency` when not given."
    )
    emergency: EmergencyPolicy = Field(
        default=None,  # type: ignore[assignment]  # always filled by _emergency_defaults
        description="Emergency numbers and wording; per-country defaults when not given.",
    )
    email: str | None = None
    website: str | None = None
    hours: Localized = Field(default_factory=dict, description="Opening hours as said aloud.")
    call_disclosure: Localized = Field(
        default_factory=dict,
        description="Said at the start of every call: that the caller talks to a virtual "
        "assistant and whether the call is transcribed (default: prompts/<lang>/voice_lines.yaml).",
    )
    booking: BookingPolicy = BookingPolicy()
    confirmations: ConfirmationPolicy = ConfirmationPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    periods: tuple[Period, ...]
    hospitals: tuple[Hospital, ...] = ()
    insurances: tuple[Insurance, ...] = ()
    services: tuple[Service, ...]
    doctors: tuple[Doctor, ...]
    closures: tuple[Closure, ...] = ()
    calendar_backend: str = Field(default="local", pattern=r"^(local|google|clinic_api)$")

    @model_validator(mode="before")
    @classmethod
    def _emergency_defaults(cls, data: object) -> object:
        """Fill ``emergency`` from the country (and a legacy ``emergency_number``), and keep
        ``emergency_number`` equal to its number, so older prompts and tools keep working."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        legacy = data.get("emergency_number") or None
        policy = data.get("emergency")
        if policy is None:
            policy = EmergencyPolicy.for_country(str(data.get("country", "")), legacy)
        elif not isinstance(policy, EmergencyPolicy):
            policy = EmergencyPolicy.model_validate(policy)
        if legacy and legacy not in (policy.number, policy.ambulance):
            raise ValueError(
                f"emergency_number {legacy!r} differs from emergency.number {policy.number!r}"
            )
        data["emergency"] = policy
        data["emergency_number"] = policy.number
        return data

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("languages")
    @classmethod
    def _supported_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for language in value:
            if language not in SUPPORTED_LANGUAGES:
                raise ValueError(f"language {language!r} is not one of {SUPPORTED_LANGUAGES}")
        if not value:
            raise ValueError("at least one language is required")
        return value

    @field_validator("country")
    @classmethod
    def _upper_country(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _references(self) -> Clinic:
        """Every id a doctor, service or insurance points at must exist; phones must parse."""
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} not in languages")
        for field_name in ("phone", "staff_phone", "doctor_whatsapp"):
            number = getattr(self, field_name)
            if number is not None and not _valid_phone(number, self.country):
                raise ValueError(f"{field_name} {number!r} is not a valid phone number")
        _unique("doctors", [d.id for d in self.doctors])
        _unique("services", [s.id for s in self.services])
        _unique("insurances", [i.id for i in self.insurances])
        _unique("hospitals", [h.id for h in self.hospitals])
        _unique("periods", [p.id for p in self.periods])
        services = {s.id for s in self.services}
        hospitals = {h.id for h in self.hospitals}
        doctors = {d.id for d in self.doctors}
        insurances = {i.id for i in self.insurances}
        for doctor in self.doctors:
            _known(f"doctor {doctor.id}: service", doctor.services, services)
            _known(f"doctor {doctor.id}: price for service", tuple(doctor.prices), doctor.services)
            _known(f"doctor {doctor.id}: hospital", doctor.hospitals, hospitals)
            for days in doctor.working_hours.values():
                _known(
                    f"doctor {doctor.id}: working_hours hospital",
                    [d.hospital for d in days if d.hospital],
                    hospitals,
                )
        for service in self.services:
            _known(f"service {service.id}: insurance price", service.insurance_prices, insurances)
            if not any(service.id in d.services for d in self.doctors):
                raise ValueError(f"service {service.id}: no doctor performs it")
        for insurance in self.insurances:
            _known(f"insurance {insurance.id}: doctor", insurance.doctors, doctors)
            _known(f"insurance {insurance.id}: service", insurance.services, services)
        for closure in self.closures:
            _known("closure doctor", closure.doctors, doctors)
            if closure.end is not None and closure.end < closure.start:
                raise ValueError(f"closure {closure.start}: end before start")
        return self

    # Look-ups (the model is frozen, so caching is safe)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def doctors_by_id(self) -> dict[str, Doctor]:
        return {d.id: d for d in self.doctors}

    @cached_property
    def services_by_id(self) -> dict[str, Service]:
        return {s.id: s for s in self.services}

    @cached_property
    def insurances_by_id(self) -> dict[str, Insurance]:
        return {i.id: i for i in self.insurances}

    @cached_property
    def hospitals_by_id(self) -> dict[str, Hospital]:
        return {h.id: h for h in self.hospitals}

    @cached_property
    def periods_by_id(self) -> dict[str, Period]:
        return {p.id: p for p in self.periods}

    def doctor(self, doctor_id: str) -> Doctor | None:
        return self.doctors_by_id.get(doctor_id)

    def service(self, service_id: str) -> Service | None:
        return self.services_by_id.get(service_id)

    def insurance(self, insurance_id: str) -> Insurance | None:
        return self.insurances_by_id.get(insurance_id)

    def doctors_for(self, service_id: str) -> list[Doctor]:
        return [d for d in self.doctors if service_id in d.services]

    def accepts(self, insurance_id: str, doctor_id: str, service_id: str) -> bool:
        """Whether a convênio covers this service with this doctor."""
        insurance = self.insurance(insurance_id)
        service = self.service(service_id)
        if insurance is None or service is None or insurance_id not in service.insurance_prices:
            return False
        if insurance.doctors and doctor_id not in insurance.doctors:
            return False
        return not insurance.services or service_id in insurance.services

    def price(
        self, service_id: str, insurance_id: str | None = None, doctor_id: str | None = None
    ) -> Decimal | None:
        """What the patient pays: the private price (the doctor's own, if the file gives him
        one), or the co-payment under a convênio."""
        service = self.service(service_id)
        if service is None:
            return None
        if insurance_id is None:
            doctor = self.doctor(doctor_id) if doctor_id else None
            if doctor is not None and service_id in doctor.prices:
                return doctor.prices[service_id]
            return service.private_price
        return service.insurance_prices.get(insurance_id)

    def is_closed(self, day: date, doctor_id: str) -> bool:
        return any(closure.covers(day, doctor_id) for closure in self.closures)


def _valid_phone(number: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, region))
    except phonenumbers.NumberParseException:
        return False


def _unique(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"{kind}: id {item!r} appears twice")
        seen.add(item)


def _known(what: str, refs: Iterable[str], known: Collection[str]) -> None:
    for ref in refs:
        if ref not in known:
            raise ValueError(f"{what} {ref!r} is not defined")
