"""Clinic look-ups by whole words in free text: services, insurances and doctors (in any script,
any Russian case, with a typo), and doctors named who are not the clinic's."""

from __future__ import annotations

import re
from dataclasses import dataclass

from voice_agent.clinic.lookup import fold
from voice_agent.clinic.model import Clinic
from voice_agent.conversation.offline.insurers import INSURERS
from voice_agent.conversation.offline.nlu.patterns import CYRILLIC, normalize, rx, words_only
from voice_agent.conversation.offline.nlu.person_names import (
    given_name_words,
    name_key,
    same_name,
    surname_words,
)
from voice_agent.conversation.offline.specialties import SPECIALTIES

_CYRILLIC_ENDING = re.compile(r"[аяоеиыуюь]$")


@dataclass(frozen=True)
class _Phrase:
    """A clinic name or synonym as folded words; Russian ones also as stems ("кардиолог")."""

    text: str
    stems: tuple[str, ...] | None
    target: str


@dataclass(frozen=True)
class _ClinicIndex:
    services: tuple[_Phrase, ...]
    insurances: tuple[_Phrase, ...]
    doctors: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...]
    """Per doctor: id, surname keys, given-name keys (first name, patronymic)."""


def _phrase(name: str, target: str) -> _Phrase:
    text = words_only(fold(name))
    stems = None
    if CYRILLIC.search(text):
        stems = tuple(_CYRILLIC_ENDING.sub("", w) if len(w) > 4 else w for w in text.split())
    return _Phrase(text, stems, target)


_INDEXES: dict[int, tuple[Clinic, _ClinicIndex]] = {}


def _index(clinic: Clinic) -> _ClinicIndex:
    """Folded look-up tables of a clinic, built once per clinic object (clinics are frozen)."""
    cached = _INDEXES.get(id(clinic))
    if cached is not None and cached[0] is clinic:
        return cached[1]
    services = tuple(
        _phrase(name, service.id)
        for service in clinic.services
        for name in (
            service.id,
            *service.names.values(),
            *(s for group in service.synonyms.values() for s in group),
        )
    )
    insurances = tuple(
        _phrase(name, insurance.id)
        for insurance in clinic.insurances
        for name in (insurance.name, *insurance.synonyms)
    )
    doctors = []
    for doctor in clinic.doctors:
        surnames = frozenset(name_key(w) for w in surname_words(doctor.name))
        given = tuple(name_key(w) for w in given_name_words(doctor.name))
        doctors.append((doctor.id, surnames, given))
    index = _ClinicIndex(services, insurances, tuple(doctors))
    if len(_INDEXES) > 16:
        _INDEXES.clear()
    _INDEXES[id(clinic)] = (clinic, index)
    return index


def _contains(words: list[str], joined: str, phrase: _Phrase) -> bool:
    """Whole-word containment; Russian words also match inflected ("кардиологу", "коже")."""
    if not phrase.text:
        return False
    if f" {phrase.text} " in joined:
        return True
    if phrase.stems is None:
        return False
    stems = phrase.stems
    for start in range(len(words) - len(stems) + 1):
        pairs = zip(words[start : start + len(stems)], stems, strict=True)
        if all(w.startswith(stem) and len(w) - len(stem) <= 3 for w, stem in pairs):
            return True
    return False


def _best(phrases: tuple[_Phrase, ...], text: str) -> str | None:
    words = words_only(text).split()
    joined = f" {' '.join(words)} "
    best: tuple[int, str] | None = None
    for phrase in phrases:
        if (best is None or len(phrase.text) > best[0]) and _contains(words, joined, phrase):
            best = (len(phrase.text), phrase.target)
    return best[1] if best else None


def find_service(clinic: Clinic, text: str) -> str | None:
    return _best(_index(clinic).services, text)


def find_other_specialty(clinic: Clinic, folded: str, language: str) -> str | None:
    """A specialty the patient names that none of the clinic's services is ("ortopedista" at
    a clinic without orthopaedics), as the reply names it; None when the clinic offers it (a
    service's name or synonym shares the word's first five letters: "cardiologista" at a clinic
    with "consulta de cardiologia") or nothing is named."""
    for pattern, said in SPECIALTIES.get(language, ()):
        match = rx(pattern).search(folded)
        if match is None:
            continue
        stem = words_only(match.group(0)).split()[0][:5]
        words = (w for phrase in _index(clinic).services for w in phrase.text.split())
        return None if any(w.startswith(stem) for w in words) else said
    return None


def find_other_insurer(clinic: Clinic, folded: str) -> str | None:
    """A health plan the patient names that is none of the clinic's ("Hapvida" at a clinic
    without it), as the reply names it; None when the clinic lists it or none is named."""
    for pattern, said in INSURERS:
        if rx(pattern).search(folded) and find_insurance(clinic, normalize(said)) is None:
            return said
    return None


def find_insurance(clinic: Clinic, text: str) -> str | None:
    return _best(_index(clinic).insurances, text)


def without_name(folded: str, name: str | None) -> str:
    """The message without the patient's own name: "sou Camila Ribeiro, quero cardiologia" does
    not ask for Dr. Paulo Ribeiro."""
    for word in normalize(name).split() if name else ():
        folded = re.sub(rf"\b{re.escape(word)}\b", " ", folded)
    return folded


def find_doctor(clinic: Clinic, text: str) -> str | None:
    """The one doctor the text names, in any script and (Russian) any case, with a typo:
    "Dr. Lima", "к доктору Лиме", "Ана Соуза", "Ivanova" for "Иванова", by surname; "Dra. Ana",
    "com o Paulo", "к Марии Петровне", by first name after a title or with the patronymic."""
    words = words_only(text).split()
    said = [(name_key(w), bool(CYRILLIC.search(w))) for w in words]
    matches = []
    for doctor_id, surnames, given in _index(clinic).doctors:
        if any(same_name(key, name, inflected) for key, inflected in said for name in surnames):
            matches.append(doctor_id)
            continue
        for position, (key, inflected) in enumerate(said):
            if not given or not same_name(key, given[0], inflected):
                continue
            before = words[position - 1] if position else ""
            after = said[position + 1] if position + 1 < len(said) else ("", False)
            with_patronymic = len(given) > 1 and same_name(after[0], given[1], after[1])
            if before in _BEFORE_GIVEN_NAME or with_patronymic:
                matches.append(doctor_id)
                break
    if not matches:  # a patronymic alone is how Russians name a doctor too ("Алексей Игоревич")
        matches = [
            doctor_id
            for doctor_id, _, given in _index(clinic).doctors
            if len(given) > 1
            and any(same_name(k, given[1], True) for k, inflected in said if inflected)
        ]
    unique = list(dict.fromkeys(matches))
    return unique[0] if len(unique) == 1 else None


_BEFORE_GIVEN_NAME = frozenset(
    "dr dra doutor doutora doctor o a com with доктор доктора доктору врач врачу".split()  # noqa: SIM905
)
_UNKNOWN_DOCTOR = re.compile(
    r"(?:\b(?i:dra?|doutora?|doctor|доктор[ау]?)\.?)\s+([A-ZÀ-ÖØ-ÞА-ЯЁ][^\W\d_]+)"
)


def unknown_doctor(text: str, clinic: Clinic) -> str | None:
    """A doctor's name the patient said ("Dr. House", "к доктору Хаусу") that is none of ours."""
    for match in _UNKNOWN_DOCTOR.finditer(text):
        word = match.group(1)
        if find_doctor(clinic, normalize(match.group(0))) is None:
            return word
    return None
