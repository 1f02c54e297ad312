"""Find services, doctors and insurances by what a person says, in any supported language."""

from __future__ import annotations

import unicodedata

from voice_agent.clinic.model import Clinic, Doctor, Insurance, Service

_TITLES = ("dra.", "dr.", "dra", "dr", "doctor", "doutor", "doutora", "доктор", "врач")


def fold(text: str) -> str:
    """Lower case, no accents, single spaces: 'Clínica  Geral' == 'clinica geral'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # Keep Cyrillic й/ё distinctions harmlessly folded too.
    return " ".join(stripped.replace("ё", "е").split())


def find_service(clinic: Clinic, text: str) -> Service | None:
    """By id, name or synonym in any language; a specialty name gives its basic consultation."""
    wanted = fold(text)
    if not wanted:
        return None
    service = clinic.service(text.strip())
    if service is not None:
        return service
    for service in clinic.services:
        names = [
            *service.names.values(),
            *(s for group in service.synonyms.values() for s in group),
        ]
        if any(fold(name) == wanted for name in names):
            return service
    specialty = [s for s in clinic.services if fold(s.specialty) == wanted]
    if specialty:
        return min(specialty, key=lambda s: (s.min_qualification, s.duration_minutes))
    for service in clinic.services:
        names = [
            *service.names.values(),
            *(s for group in service.synonyms.values() for s in group),
        ]
        if any(_contains(wanted, fold(name)) for name in names):
            return service
    return None


def find_doctor(clinic: Clinic, text: str) -> Doctor | None:
    """By id or by name, with or without title, full name or a distinctive part of it."""
    doctor = clinic.doctor(text.strip())
    if doctor is not None:
        return doctor
    words = [w for w in fold(text).split() if w not in _TITLES]
    if not words:
        return None
    wanted = " ".join(words)
    matches = []
    for doctor in clinic.doctors:
        name_words = [w for w in fold(doctor.name).split() if w not in _TITLES]
        if " ".join(name_words) == wanted:
            return doctor
        if all(any(nw.startswith(w) for nw in name_words) for w in words):
            matches.append(doctor)
    return matches[0] if len(matches) == 1 else None


def find_insurance(clinic: Clinic, text: str) -> Insurance | None:
    wanted = fold(text)
    insurance = clinic.insurance(text.strip())
    if insurance is not None:
        return insurance
    for insurance in clinic.insurances:
        if wanted in (fold(insurance.name), *(fold(s) for s in insurance.synonyms)):
            return insurance
    for insurance in clinic.insurances:
        if any(_contains(wanted, fold(n)) for n in (insurance.name, *insurance.synonyms)):
            return insurance
    return None


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment, so 'eco' does not match 'ecologia'."""
    return f" {needle} " in f" {haystack} "
