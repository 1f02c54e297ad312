"""People's names: how to address a patient, and Russian name parts in any grammatical case.

Russian morphology comes from ``pymorphy3`` (OpenCorpora dictionaries): it knows that "Марии" is
the name Мария, "Петровне" the patronymic Петровна and "Петрова" a surname, which hand-written
ending tables guessed at. A Russian patient is addressed by first name and patronymic
("Ольга Викторовна"), as a Russian receptionist would; others by first name.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

_CYRILLIC = frozenset("абвгдеёжзийклмнопрстуфхцчшщъыьэюя")


@cache
def _morph() -> Any:
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


def warm_up() -> None:
    """Load the dictionaries now (about 0.15 s), not on a patient's first Russian turn."""
    _morph().parse("анна")


def is_cyrillic(word: str) -> bool:
    return any(ch in _CYRILLIC for ch in word.lower())


def name_part(word: str) -> tuple[str, str] | None:
    """("Name" | "Patr" | "Surn", nominative lemma) of a Russian name word in any case, or None.

    Only a parse the dictionary finds likely enough counts, so "Хаусу" (a noun) is no name."""
    if not is_cyrillic(word):
        return None
    for parse in _morph().parse(word.lower()):
        for kind in ("Name", "Patr", "Surn"):
            if kind in parse.tag and parse.score >= 0.1:
                return kind, parse.normal_form
    return None


def address(full_name: str, language: str) -> str:
    """How to address the patient: "Ольга Викторовна" for "Кузнецова Ольга Викторовна",
    "Анна" for "Петрова Анна", "Maria" for "Maria da Silva"."""
    words = full_name.split()
    if not words:
        return full_name
    if not is_cyrillic(full_name):
        return words[0]
    kinds = [(name_part(w) or ("", ""))[0] for w in words]
    first = next((i for i, k in enumerate(kinds) if k == "Name"), None)
    patronymic = next((i for i, k in enumerate(kinds) if k == "Patr"), None)
    if first is not None and patronymic is not None:
        return f"{words[first]} {words[patronymic]}"
    if first is not None:
        return words[first]
    if len(words) == 3:  # Фамилия Имя Отчество, the official order
        return f"{words[1]} {words[2]}"
    return words[0]


_RELATIVE = {
    "pt-BR": r"\b(?:para|pra) (?:o |a )?(?:meu|minha) (?:filh[oa]|net[oa]|m[aã]e|pai|espos[oa]"
    r"|marido|mulher|irm[aã]o?)\s+",
    "en": r"\bfor my (?:son|daughter|child|kid|mother|father|mom|mum|dad|wife|husband|brother"
    r"|sister)\s+",
    "ru": r"(?i:\b(?:сына|дочь|дочку|реб[её]нка|маму|папу|мужа|жену|брата|сестру))\s+",
}
_CAPITALIZED = r"((?:[A-ZÀ-ÝА-ЯЁ][^\W\d_]+)(?:\s+[A-ZÀ-ÝА-ЯЁ][^\W\d_]+){0,3})"


def relative(text: str, language: str) -> str | None:
    """The name of the relative a booking is for: "para minha filha Sofia Costa", "for my son
    Tommy", "записать сына Зайцева Мишу" (in the nominative: "Зайцев Миша")."""
    prefix = _RELATIVE.get(language)
    match = re.search(prefix + _CAPITALIZED, text) if prefix else None
    if match is None:
        return None
    words = match.group(1).split()
    if language == "ru":
        words = [_nominative(w) for w in words]
    return " ".join(words)


def _nominative(word: str) -> str:
    """The name in the nominative. After "записать сына / дочь / маму" it is the object, in the
    accusative: "Зайцева" there is Зайцев (his accusative), not the feminine Зайцева."""
    parses = [
        p
        for p in _morph().parse(word.lower())
        if any(kind in p.tag for kind in ("Name", "Surn", "Patr"))
    ]
    for parse in sorted(parses, key=lambda p: "accs" not in p.tag):
        form = parse.inflect({"nomn"})
        if form is not None:
            return form.word.capitalize()
    return word
