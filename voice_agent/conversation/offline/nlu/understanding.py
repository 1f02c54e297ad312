"""Everything read in one message (``Understanding``), and ``parse``, which puts the readers
together: intents, the clinic's entities, contact details, option choices, date/time wishes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time

from voice_agent.clinic.model import Clinic
from voice_agent.conversation.offline.lexicon import INTENTS, LEXICONS
from voice_agent.conversation.offline.nlu.clinic_index import (
    find_doctor,
    find_insurance,
    find_other_insurer,
    find_other_specialty,
    find_service,
    without_name,
)
from voice_agent.conversation.offline.nlu.dates import TimeWish, parse_when, parts_of_day
from voice_agent.conversation.offline.nlu.intents import (
    find_option,
    refine_intents,
    resolve_questions,
    with_aliases,
    without_dates,
)
from voice_agent.conversation.offline.nlu.patterns import CYRILLIC, EMAIL, PHONE, normalize, rx
from voice_agent.conversation.offline.nlu.person_names import (
    extract_name,
    given_name_words,
    leading_name,
    name_key,
    same_name,
)
from voice_agent.conversation.offline.specialties import SPECIALTIES

_QUESTION_WORD = re.compile(r"\b[a-z\u0430-\u044f]{2,}\b")
"""Words of our scripts: "hmm 漢字 ???" is not a question we could route."""
_SMALL_TALK = frozenset({"greeting", "thanks", "yes", "no"})


@dataclass
class Understanding:
    intents: set[str] = field(default_factory=set)
    service_id: str | None = None
    doctor_id: str | None = None
    insurance_id: str | None = None
    private: bool = False
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    wish: TimeWish = field(default_factory=TimeWish)
    option: int | None = None
    """1-based option, or -1 for the last one."""
    clock: time | None = None
    """A clock time said alone ("the 10:30 one"), to match an offer."""
    weekday_mentions: list[str] = field(default_factory=list)
    night: time | None = None
    """A night hour asked for ("3 da manhã"), when the clinic is closed."""
    asks: bool = False
    """Phrased as a question ("…?", "do you…", "есть ли…", "vocês têm…")."""
    other_specialty: str | None = None
    """A specialty named that the clinic does not offer ("ortopedista"), as replies name it."""
    other_insurer: str | None = None
    """A health plan named that the clinic does not take ("Hapvida"), as replies name it."""

    def has(self, *intents: str) -> bool:
        return any(i in self.intents for i in intents)

    @property
    def unknown_question(self) -> bool:
        """A question about nothing the receptionist knows or does ("do you have parking?")."""
        if not self.asks or self.question is not None:
            return False
        if self.intents - _SMALL_TALK:
            return False
        entities = (
            self.service_id,
            self.doctor_id,
            self.insurance_id,
            self.email,
            self.phone,
            self.other_specialty,
            self.other_insurer,
        )
        return not any(entities) and self.option is None and self.clock is None and self.wish.empty

    @property
    def question(self) -> str | None:
        for intent in INTENTS:
            if intent.startswith("ask_") and intent in self.intents:
                return intent
        return None


def _leading_name(text: str, language: str, clinic: Clinic) -> str | None:
    """A name before the first comma, unless it is one of the clinic's plans or services
    ("Bradesco Saúde, vocês aceitam?")."""
    name = leading_name(text, language)
    if name is None:
        return None
    folded = normalize(name)
    if find_insurance(clinic, folded) or find_service(clinic, folded):
        return None
    if _INSTITUTION.search(folded) or any(folded in place for place in _places(clinic)):
        return None  # "Hospital Vila Mariana, qual o endereço?": a place, not the caller
    doctor_id = find_doctor(clinic, folded)
    doctor = clinic.doctor(doctor_id) if doctor_id else None
    if doctor is not None and _names_the_doctor(folded, doctor.name):
        return None  # "Ана Соуза, пожалуйста": the doctor asked for, by first name and surname
    return name


_INSTITUTION = re.compile(
    r"\b(hospital|clinica|clinic|consultorio|laboratorio|centro|instituto|pronto socorro"
    r"|больниц\w*|клиник\w*|центр\w*|госпитал\w*|поликлиник\w*)\b"
)


def _places(clinic: Clinic) -> list[str]:
    """The clinic's and its hospitals' names and addresses, folded."""
    names = [clinic.name, clinic.address]
    names += [part for hospital in clinic.hospitals for part in (hospital.name, hospital.address)]
    return [normalize(name) for name in names]


def _names_the_doctor(folded: str, doctor_name: str) -> bool:
    said = [(name_key(w), bool(CYRILLIC.search(w))) for w in folded.split()]
    return any(
        same_name(key, name_key(given), inflected)
        for key, inflected in said
        for given in given_name_words(doctor_name)
    )


def parse(
    text: str,
    language: str,
    clinic: Clinic,
    today: date,
    *,
    expecting_choice: bool = False,
) -> Understanding:
    """Everything the offline receptionist can read in one message."""
    lex = LEXICONS.get(language, LEXICONS["en"])
    folded = normalize(text)
    found = Understanding()
    email = EMAIL.search(text)
    if email:
        found.email = email.group(0).strip(".")
    without_email = EMAIL.sub(" ", folded)
    phone = PHONE.search(without_email)
    if phone and sum(ch.isdigit() for ch in phone.group(0)) >= 8:
        found.phone = phone.group(0).strip()
        without_email = without_email.replace(phone.group(0), " ")
    for intent in INTENTS:
        if any(rx(p).search(without_email) for p in lex.intents.get(intent, ())):
            found.intents.add(intent)
    refine_intents(found, without_email, lex)
    found.service_id = find_service(clinic, with_aliases(without_email, lex))
    if found.service_id is None:
        found.other_specialty = find_other_specialty(clinic, without_email, language)
    found.name = extract_name(text, language, prefixed_only=True) or _leading_name(
        text, language, clinic
    )
    found.doctor_id = find_doctor(clinic, without_name(without_email, found.name))
    found.insurance_id = find_insurance(clinic, without_email)
    if found.insurance_id is None:
        found.other_insurer = find_other_insurer(clinic, without_email)
    found.private = bool(rx(lex.private).search(without_email))
    found.asks = bool(rx(lex.question).search(without_email)) or (
        text.rstrip().endswith("?") and len(_QUESTION_WORD.findall(without_email)) >= 2
    )
    resolve_questions(found)
    if found.asks and found.question is None and found.insurance_id and found.service_id:
        # "а по ОМС к неврологу можно?": when the plan does not cover it, that is the answer.
        doctors = clinic.doctors_for(found.service_id)
        if not any(clinic.accepts(found.insurance_id, d.id, found.service_id) for d in doctors):
            found.intents.add("ask_insurances")
    rest = without_email
    if expecting_choice:
        found.option, _ = find_option(without_dates(rest, lex), lex)
        if found.option is not None:
            _, rest = find_option(rest, lex)
    found.wish, found.weekday_mentions, found.clock = parse_when(rest, language, today)
    parts_of_day(found, rest, language, clinic)
    return found


_WARM_UP = (
    "Olá, quero marcar uma consulta amanhã às 10h30, não na segunda, depois das 15h, dia 3",
    "primeira opção, 25 de novembro, próxima terça à tarde, semana que vem, daqui a 3 dias",
    "Здравствуйте, запишите меня на завтра в 10:30, не в понедельник, после 15, 25 ноября",
    "первый вариант, на следующей неделе вечером, через 3 дня, 5-го числа",
    "Hi, I'd like to book tomorrow at 10am, not on Monday, after 3pm, December 1st",
    "the first one, next Tuesday afternoon, next week, in 3 days, the 5th",
)


def warm_up(clinic: Clinic) -> None:
    """Compile the patterns and build the clinic index once (a first message would pay ~0.1 s)."""
    for language, lex in LEXICONS.items():
        for patterns in lex.intents.values():
            for pattern in patterns:
                rx(pattern)
        for pattern, _ in SPECIALTIES.get(language, ()):
            rx(pattern)
        for text in _WARM_UP:
            parse(text, language, clinic, date(2026, 1, 5), expecting_choice=True)
            extract_name(text, language)
