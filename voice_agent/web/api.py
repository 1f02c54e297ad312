"""Small JSON API for staff tools and health checks; no patient data is served here."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from voice_agent.clinic.lookup import find_service
from voice_agent.i18n import say_when
from voice_agent.scheduling.preferences import Preferences
from voice_agent.web.deps import ServicesDep

router = APIRouter()


@router.get("/health")
async def health(services: ServicesDep) -> dict[str, Any]:
    clinic = services.clinic()
    return {"status": "ok", "clinic": clinic.name, "calendar": services.calendar.name}


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PublicService(_Public):
    id: str
    names: dict[str, str]
    specialty: str
    duration_minutes: int
    private_price: Decimal
    insurance_prices: dict[str, Decimal]
    description: dict[str, str]


class PublicDoctor(_Public):
    id: str
    name: str
    specialties: tuple[str, ...]
    services: tuple[str, ...]
    title: dict[str, str]
    hospitals: tuple[str, ...]
    languages: tuple[str, ...]


class PublicNamed(_Public):
    id: str
    name: str


class PublicHospital(PublicNamed):
    address: str


class PublicClinic(_Public):
    """What the clinic would print on its website: no staff phone, no doctor's WhatsApp, no
    calendar ids, no policies (staff see those in the console, behind authentication)."""

    name: str
    timezone: str
    languages: tuple[str, ...]
    default_language: str
    address: str
    phone: str
    emergency_number: str
    email: str | None
    website: str | None
    hours: dict[str, str]
    services: tuple[PublicService, ...]
    doctors: tuple[PublicDoctor, ...]
    hospitals: tuple[PublicHospital, ...]
    insurances: tuple[PublicNamed, ...]


@router.get("/api/clinic", response_model=PublicClinic)
async def clinic(services: ServicesDep) -> PublicClinic:
    """The clinic's public facts (served without authentication)."""
    return PublicClinic.model_validate(services.clinic())


@router.get("/api/slots")
async def slots(
    services: ServicesDep,
    service: Annotated[str, Query(min_length=1, max_length=100)],
    doctor: Annotated[str | None, Query(max_length=100)] = None,
    period: Annotated[list[str], Query(max_length=10)] = [],  # noqa: B006
    date_from: date | None = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
    language: Annotated[str | None, Query(pattern=r"^(pt-BR|ru|en)$")] = None,
) -> dict[str, Any]:
    """Ranked free slots without holding them (for staff screens and monitoring)."""
    clinic = services.clinic()
    found = find_service(clinic, service)
    if found is None:
        raise HTTPException(404, "unknown service")  # not echoed: input never comes back
    try:
        prefs = Preferences(periods=period, date_from=date_from, doctor_id=doctor)
    except ValueError:
        raise HTTPException(422, "invalid period, doctor or date") from None
    offers = await services.booking.rank(
        found.id, prefs, now=services.clock.now(), limit=limit, language=language
    )
    lang = language or clinic.default_language
    return {
        "service": found.id,
        "offers": [
            {
                "doctor_id": o.slot.doctor_id,
                "start": o.slot.start.isoformat(),
                "when": say_when(o.slot.start.astimezone(clinic.tz), lang),
                "score": round(o.score, 3),
                "reasons": [r.code for r in o.reasons],
            }
            for o in offers
        ],
    }
