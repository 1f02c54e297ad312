"""Text helpers every reader shares: folding, accent-blind patterns, e-mail and phone shapes."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from voice_agent.clinic.lookup import fold

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w@])\+?\d[\d\s().-]{7,}\d(?![\w@])")


CYRILLIC = re.compile(r"[\u0400-\u04FF]")


def _strip_marks(pattern: str) -> str:
    decomposed = unicodedata.normalize("NFKD", pattern.replace("ё", "е"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@cache
def rx(pattern: str) -> re.Pattern[str]:
    return re.compile(_strip_marks(pattern))


def normalize(text: str) -> str:
    """Folded text with emoji and symbols turned to spaces, so patterns see words only."""
    cleaned = "".join(
        ch if unicodedata.category(ch)[0] in "LNZ" or ch in "@.:+-'/,?!_" else " " for ch in text
    )
    return fold(cleaned)


def words_only(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+(?:-[^\W_]+)*", text))
