"""Which of the supported languages (pt-BR, ru, en) a message is written in.

Cyrillic means Russian; Portuguese diacritics or common Portuguese words mean pt-BR; common
English words mean English. Anything else ("ok", "2", an emoji) is ``None``: not enough to switch.
The clinic's proper names (insurers, doctors, hospitals: "Bradesco Saúde", "Dra. Fernanda") are
masked first, so an accent in a name never makes an English message Portuguese.

Why not lingua-language-detector: measured here, it calls "I need a dermatologist with Bradesco
Saúde" Portuguese at 0.98 (the accented name outweighs the English words) and "ok" English at
0.94, needs 2 s and tens of MB to load its models, and 35 ms on a first call; the word lists
below, with names masked, decide these short messages correctly in microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from voice_agent.clinic.lookup import fold
from voice_agent.clinic.model import Clinic

_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LATIN = re.compile(r"[A-Za-z\u00C0-\u024F]")
_PT_DIACRITICS = re.compile(r"[ãõçâêôáéíóúà]", re.IGNORECASE)
_PT_WORDS = frozenset(
    """oi ola bom boa dia tarde noite quero queria gostaria preciso marcar agendar consulta
    consultas amanha hoje semana proxima sim nao obrigado obrigada por favor voce voces meu minha
    nome sou tem tenho qual quais quanto custa convenio plano horario horarios manha depois antes
    das dos para com uma um pode posso desmarcar cancelar remarcar segunda terca quarta quinta
    sexta sabado domingo doutor doutora medico medica clinica exame atendente falar isso esse essa
    tudo bem de da do na no em que""".split()  # noqa: SIM905
)
_EN_WORDS = frozenset(
    """hi hello hey good morning afternoon evening i want would like need book appointment
    schedule tomorrow today week next yes no thanks thank you please my name is am the
    what which how much cost price insurance doctor clinic cancel reschedule change monday
    tuesday wednesday thursday friday saturday sunday any time after before with for can could
    speak someone person human hours open where address this that none of these one an
    does did have has are is was there see take accept work kids children other others lunch
    parking""".split()  # noqa: SIM905
)
# Words shared by both lists count for neither.
_PT_ONLY = _PT_WORDS - _EN_WORDS
_EN_ONLY = _EN_WORDS - _PT_WORDS


def detect_language(text: str, proper_names: Iterable[str] = ()) -> str | None:
    """``ru``, ``pt-BR``, ``en`` or ``None`` when the text does not say; ``proper_names`` are
    removed before reading (case and accents ignored)."""
    if proper_names:
        folded = fold(text)
        masked = folded
        for name in proper_names:
            if name in masked:
                masked = masked.replace(name, " ")
        if masked != folded:
            text = masked
    cyrillic = len(_CYRILLIC.findall(text))
    latin = len(_LATIN.findall(text))
    if cyrillic and cyrillic >= latin:
        return "ru"
    if not latin:
        return None
    words = re.findall(r"[^\W\d_]+", fold(text))
    pt = sum(1 for w in words if w in _PT_ONLY) + 2 * len(_PT_DIACRITICS.findall(text))
    en = sum(1 for w in words if w in _EN_ONLY)
    if pt > en:
        return "pt-BR"
    if en > pt:
        return "en"
    return None


_NAMES: dict[int, tuple[Clinic, tuple[str, ...]]] = {}


def proper_names(clinic: Clinic) -> tuple[str, ...]:
    """The clinic's names that say nothing about the patient's language, folded, longest
    first; built once per clinic object."""
    cached = _NAMES.get(id(clinic))
    if cached is not None and cached[0] is clinic:
        return cached[1]
    names = [i.name for i in clinic.insurances] + [s for i in clinic.insurances for s in i.synonyms]
    names += [d.name for d in clinic.doctors] + [h.name for h in clinic.hospitals]
    names += [w for d in clinic.doctors for w in d.name.split() if len(w) >= 4]
    folded = tuple(sorted({fold(n) for n in names if len(n) >= 3}, key=len, reverse=True))
    if len(_NAMES) > 16:
        _NAMES.clear()
    _NAMES[id(clinic)] = (clinic, folded)
    return folded
