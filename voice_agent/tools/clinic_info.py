"""Facts about the clinic: services, prices, insurances (convênios), doctors, hospitals, hours."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from voice_agent.clinic.lookup import find_doctor, find_insurance, find_service
from voice_agent.clinic.model import Clinic, Doctor, Service
from voice_agent.i18n import say_money
from voice_agent.store.tables import InteractionKind
from voice_agent.tools.context import ToolContext

Topic = Literal["services", "prices", "insurances", "doctors", "hospitals", "hours", "contact"]


async def clinic_info(
    ctx: ToolContext,
    topic: Annotated[Topic, Field(description="What the patient asks about.")],
    about: Annotated[
        str | None,
        Field(description="A service, doctor or health plan named by the patient, if any."),
    ] = None,
) -> dict[str, Any]:
    """Answer questions about services, prices, accepted health plans, doctors, the hospitals
    where the doctors work, opening hours and contact details. Use only what this returns."""
    clinic = ctx.services.clinic()
    language = ctx.language
    answer = _answer(clinic, topic, about, language)
    patient_id = await ctx.patient_id() if ctx.caller_phone else None
    await ctx.note(
        InteractionKind.information,
        patient_id=patient_id,
        details={"topic": topic, "about": (about or "")[:100]},
    )
    return answer


def _answer(clinic: Clinic, topic: Topic, about: str | None, language: str) -> dict[str, Any]:
    if topic in ("services", "prices"):
        service = find_service(clinic, about) if about else None
        if about and service is None:
            return {"not_found": about, "services": [s.name(language) for s in clinic.services]}
        services = [service] if service else list(clinic.services)
        return {"services": [_service(clinic, s, language) for s in services]}
    if topic == "insurances":
        insurance = find_insurance(clinic, about) if about else None
        if about and insurance is None:
            service = find_service(clinic, about)
            if service is not None:
                return {"services": [_service(clinic, service, language)]}
            return {
                "not_accepted": about,
                "accepted": [i.name for i in clinic.insurances],
                "note": "Patients without an accepted plan can book as private.",
            }
        insurances = [insurance] if insurance else list(clinic.insurances)
        return {
            "insurances": [
                {
                    "name": i.name,
                    "covers": [
                        {
                            "service": s.name(language),
                            "patient_pays": say_money(s.insurance_prices[i.id], clinic.country),
                            "doctors": [
                                d.name
                                for d in clinic.doctors_for(s.id)
                                if clinic.accepts(i.id, d.id, s.id)
                            ],
                        }
                        for s in clinic.services
                        if i.id in s.insurance_prices
                        and any(clinic.accepts(i.id, d.id, s.id) for d in clinic.doctors_for(s.id))
                    ],
                }
                for i in insurances
            ]
        }
    if topic == "doctors":
        doctor = find_doctor(clinic, about) if about else None
        if doctor is None and about:
            service = find_service(clinic, about)
            doctors = clinic.doctors_for(service.id) if service else list(clinic.doctors)
        else:
            doctors = [doctor] if doctor else list(clinic.doctors)
        return {"doctors": [_doctor(clinic, d, language) for d in doctors]}
    if topic == "hospitals":
        return {
            "hospitals": [
                {
                    "name": h.name,
                    "address": h.address,
                    "phone": h.phone,
                    "doctors": [d.name for d in clinic.doctors if h.id in d.hospitals],
                }
                for h in clinic.hospitals
            ]
        }
    if topic == "hours":
        return {"hours": clinic.hours.get(language) or next(iter(clinic.hours.values()), "")}
    return {
        "name": clinic.name,
        "address": clinic.address,
        "phone": clinic.phone,
        "email": clinic.email,
        "website": clinic.website,
    }


def _service(clinic: Clinic, service: Service, language: str) -> dict[str, Any]:
    return {
        "service": service.name(language),
        "duration_minutes": service.duration_minutes,
        "private_price": say_money(service.private_price, clinic.country),
        "with_insurance": {
            clinic.insurances_by_id[i].name: say_money(price, clinic.country)
            for i, price in service.insurance_prices.items()
        },
        "doctors": [d.name for d in clinic.doctors_for(service.id)],
        "doctor_prices": {
            d.name: say_money(d.prices[service.id], clinic.country)
            for d in clinic.doctors_for(service.id)
            if service.id in d.prices
        },
    }


def _doctor(clinic: Clinic, doctor: Doctor, language: str) -> dict[str, Any]:
    return {
        "name": doctor.name,
        "title": doctor.title.get(language) or next(iter(doctor.title.values()), ""),
        "services": [clinic.services_by_id[s].name(language) for s in doctor.services],
        "hospitals": [clinic.hospitals_by_id[h].name for h in doctor.hospitals],
        "works_on": [day.value for day in doctor.working_hours],
    }
