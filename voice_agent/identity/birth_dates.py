"""Birth dates as callers say or type them: "15/03/1980", "15.03.1980", "1980-03-15",
"15031980" on the keypad, "15 de março de 1980", "15 марта 1980", "March 15, 1980".

Kept apart from the offline NLU (whose dates are appointment days, never with a past year).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

MONTHS: dict[str, tuple[str, ...]] = {
    "pt-BR": (
        "jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez",
    ),
    "ru": (
        "январ", "феврал", "март", "апрел", "ма[яй]", "июн", "июл", "август", "сентябр",
        "октябр", "ноябр", "декабр",
    ),
    "en": (
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ),
}  # fmt: skip


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch) or ch == "\u0306")


def parse_birth_date(text: str, language: str) -> date | None:
    """The one date in ``text`` with a four-digit year, or None (never guesses a year)."""
    folded = unicodedata.normalize("NFC", _fold(text))
    month_first = language == "en"
    iso = re.search(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b", folded)
    if iso:
        return _date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    numeric = re.search(r"\b(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{4})\b", folded)
    if numeric:
        a, b, year = int(numeric.group(1)), int(numeric.group(2)), int(numeric.group(3))
        day, month = (b, a) if month_first and a <= 12 else (a, b)
        return _date(year, month, day)
    keyed = re.fullmatch(r"\s*(\d{2})(\d{2})(\d{4})#?\s*", folded)
    if keyed:
        a, b, year = int(keyed.group(1)), int(keyed.group(2)), int(keyed.group(3))
        day, month = (b, a) if month_first and a <= 12 else (a, b)
        return _date(year, month, day)
    for index, stem in enumerate(MONTHS.get(language, MONTHS["en"]), 1):
        day_first = re.search(
            rf"\b(\d{{1,2}})(?:st|nd|rd|th|-?го)?\s+(?:de\s+|of\s+)?{stem}\w*\.?,?\s+(?:de\s+)?(\d{{4}})",
            folded,
        )
        if day_first:
            return _date(int(day_first.group(2)), index, int(day_first.group(1)))
        month_first_match = re.search(
            rf"\b{stem}\w*\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})", folded
        )
        if month_first_match:
            return _date(int(month_first_match.group(2)), index, int(month_first_match.group(1)))
    return None


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None
