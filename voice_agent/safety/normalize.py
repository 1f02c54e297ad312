"""Text as the red-flag rules see it: folded case and accents, Russian in one coarse spelling.

Patients type without accents ("nao consigo respirar"), without «ё», in Latin letters
("rebenok ne dyshit") and with typos ("convulsionano", "судароги"). Everything is folded to one
spelling before matching, so a rule is written once:

- ``fold``: case-folded, accents dropped (é→e, ç→c, й→и, ё→е), apostrophes removed ("can't" →
  "cant"), any other non-letter a space; Russian letters that transliteration and typing blur are
  merged (ы→и, э→е, щ→ш, ь/ъ dropped). Rule patterns get the same letter folding.
- ``to_cyrillic``: Latin transliteration of Russian back to Cyrillic (greedy, longest first).
- ``Speller``: a token that is not a rule word but one edit away from one (two for long words,
  same first letter) becomes that word — rapidfuzz's optimal-string-alignment distance counts a
  swap of two letters as one edit ("pian" → "pain").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from rapidfuzz.distance import OSA
from rapidfuzz.process import extractOne

_CYRILLIC_MERGE = str.maketrans({"ы": "и", "э": "е", "щ": "ш", "ь": None, "ъ": None})
_APOSTROPHES = re.compile(r"['’`´]")
_NON_WORD = re.compile(r"[^\w]+")
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d])|(?<=[^\W\d])(?=\d)")
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]")

_TRANSLIT = {
    "shch": "щ",
    "sch": "щ",
    "zh": "ж",
    "kh": "х",
    "ts": "ц",
    "tz": "ц",
    "ch": "ч",
    "sh": "ш",
    "yu": "ю",
    "ju": "ю",
    "ya": "я",
    "ja": "я",
    "yo": "е",
    "jo": "е",
    "ye": "е",
    "je": "е",
    "a": "а",
    "b": "б",
    "c": "ц",
    "d": "д",
    "e": "е",
    "f": "ф",
    "g": "г",
    "h": "х",
    "i": "и",
    "j": "й",
    "k": "к",
    "l": "л",
    "m": "м",
    "n": "н",
    "o": "о",
    "p": "п",
    "q": "к",
    "r": "р",
    "s": "с",
    "t": "т",
    "u": "у",
    "v": "в",
    "w": "в",
    "x": "х",
    "y": "ы",
    "z": "з",
}
_TRANSLIT_RE = re.compile("|".join(sorted(_TRANSLIT, key=len, reverse=True)))


def fold_letters(text: str) -> str:
    """Accents off and Russian letters merged; nothing else changes (safe on regex source)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return plain.translate(_CYRILLIC_MERGE)


def fold(text: str) -> str:
    """The matching form of a text: lower case, plain letters, single spaces."""
    text = fold_letters(text.casefold())
    text = _APOSTROPHES.sub("", text)
    text = _NON_WORD.sub(" ", text.replace("_", " "))
    text = _DIGIT_LETTER.sub(" ", text)  # "39graus" -> "39 graus"
    return " ".join(text.split())


def has_cyrillic(text: str) -> bool:
    return _CYRILLIC.search(text) is not None


def has_latin(folded: str) -> bool:
    return _LATIN.search(folded) is not None


def to_cyrillic(folded: str) -> str:
    """Read a folded Latin text as transliterated Russian ("ne dyshit" -> "не дишит")."""
    return fold_letters(_TRANSLIT_RE.sub(lambda m: _TRANSLIT[m.group(0)], folded))


class Speller:
    """Corrects typos toward the rule vocabulary only; words it does not know stay as they are."""

    def __init__(self, words: Iterable[str]) -> None:
        known = {fold(word) for word in words if word.strip()}
        self._known = frozenset(w for w in known if " " not in w)
        by_initial: dict[str, list[str]] = {}
        for word in self._known:
            by_initial.setdefault(word[0], []).append(word)
        self._by_initial = {k: sorted(v) for k, v in by_initial.items()}
        self.correct_token = lru_cache(maxsize=8192)(self._correct_token)

    def _correct_token(self, token: str) -> str:
        if len(token) < 4 or token in self._known or token.isdigit():
            return token
        candidates = self._by_initial.get(token[0])
        if not candidates:
            return token
        limit = 2 if len(token) >= 8 else 1
        best = extractOne(token, candidates, scorer=OSA.distance, score_cutoff=limit)
        if best is None:
            return token
        word = best[0]
        if token.startswith(word) or abs(len(word) - len(token)) > limit:
            return token  # an inflection of a rule word ("bebeu"), not a typo of it
        return word

    def correct(self, folded: str) -> str:
        return " ".join(self.correct_token(token) for token in folded.split(" "))
