"""The words of confirmations (``prompts/<language>/confirmation_messages.yaml``) and the reading
of a patient's answer: 1 / 2 / 3, a keypad digit, or a short word in their language."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any

import yaml

from voice_agent.clinic.model import Clinic
from voice_agent.i18n import language_or_default, say_date, say_time, say_when
from voice_agent.store.tables import Appointment, Patient


class Answer(StrEnum):
    confirm = "confirm"
    cancel = "cancel"
    change = "change"
    unclear = "unclear"
    """No words at all (a stray digit, an emoji, punctuation): ask again."""
    free_text = "free_text"
    """Words that are not an answer: the text receptionist takes over."""


DIGITS = {"1": Answer.confirm, "2": Answer.cancel, "3": Answer.change}
_PUNCTUATION = re.compile(r"[^\w\s👍]+")


@dataclass(frozen=True)
class ConfirmationTexts:
    language: str
    data: dict[str, Any]

    def get(self, key: str, **values: str) -> str:
        return Template(str(self.data[key])).safe_substitute(values)

    @property
    def say_language(self) -> str:
        return str(self.data["say_language"])

    def words(self, key: str) -> frozenset[str]:
        return frozenset(normalize(str(word)) for word in self.data.get(key, ()))

    def read_answer(self, text: str) -> Answer:
        """What a reply means. Digits first (``1``, ``1.``, ``1 - sim``), then whole phrases."""
        cleaned = normalize(text)
        if not cleaned:
            return Answer.unclear
        first = cleaned.split()[0]
        if first in DIGITS:
            return DIGITS[first]
        for answer, key in (
            (Answer.confirm, "reply_confirm"),
            (Answer.cancel, "reply_cancel"),
            (Answer.change, "reply_change"),
        ):
            if cleaned in self.words(key):
                return answer
        if not any(ch.isalpha() for ch in cleaned):
            return Answer.unclear
        return Answer.free_text


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text).casefold().replace("ё", "е")
    return " ".join(_PUNCTUATION.sub(" ", text).split())


@lru_cache(maxsize=8)
def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def confirmation_texts(prompts_dir: Path, language: str) -> ConfirmationTexts:
    language = language_or_default(language)
    return ConfirmationTexts(language, _load(prompts_dir / language / "confirmation_messages.yaml"))


def appointment_values(
    clinic: Clinic, appointment: Appointment, patient: Patient | None, texts: ConfirmationTexts
) -> dict[str, str]:
    """What the messages say about an appointment, in the patient's language."""
    local = appointment.start.astimezone(clinic.tz)
    doctor = clinic.doctor(appointment.doctor_id)
    first_name = (patient.full_name or "").split()[0] if patient and patient.full_name else ""
    values = {
        "first_name": first_name,
        "name_part": f", {first_name}" if first_name else "",
        "clinic": clinic.name,
        "clinic_name": clinic.name,
        "when": say_when(local, texts.language),
        "day": say_date(local.date(), texts.language),
        "time": say_time(local, texts.language),
        "doctor": doctor.name if doctor else appointment.doctor_id,
        "address": clinic.address,
        "phone": clinic.phone,
    }
    values["hello"] = texts.get("hello_named" if first_name else "hello", **values)
    return values
