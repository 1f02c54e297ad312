"""Intents once the lexicon matched: conflicts settled ("não, pode ser na quinta"), questions
resolved by their entities, option numbers and ordinals, and the explicit yes the LLM loop
checks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from voice_agent.conversation.offline.lexicon import LEXICONS, Lexicon
from voice_agent.conversation.offline.nlu.patterns import normalize, rx

if TYPE_CHECKING:
    from voice_agent.conversation.offline.nlu.understanding import Understanding


def refine_intents(found: Understanding, text: str, lex: Lexicon) -> None:
    intents = found.intents
    if "book_weak" in intents:
        intents.discard("book_weak")
        # "quanto custa a consulta?" asks a price; "quero uma consulta" asks to book.
        if not any(i.startswith("ask_") for i in intents):
            intents.add("book")
    if "earlier" in intents:
        intents.discard("more")  # "tem mais cedo?": earlier, not more of the later times
    if "postpone" in intents:
        intents.add("reschedule")  # "quero empurrar a consulta pra frente": a move, later
    if "cancel" in intents and "reschedule" in intents:
        intents.discard("cancel")
    if intents & {"cancel", "reschedule", "list", "confirm_attendance"}:
        intents.discard("book")
    if intents & {"confirm_attendance", "cancel", "reschedule"}:
        # "pode cancelar" is a yes only to a cancellation read-back: the dialogue decides.
        intents.discard("yes")
    if "no" in intents and "yes" in intents:
        # "não, pode ser na quinta" / "нет, давайте в четверг": the first word decides.
        first = text.split()[0] if text.split() else ""
        yes_first = any(rx(p).match(first) for p in lex.intents["yes"][:1])
        intents.discard("no" if yes_first else "yes")
    if "reject" in intents and "yes" in intents:
        intents.discard("yes")


def with_aliases(text: str, lex: Lexicon) -> str:
    for pattern, word in lex.aliases:
        text = rx(pattern).sub(word, text)
    return text


def resolve_questions(found: Understanding) -> None:
    """What a question asks once its entities are known: "do you accept Amil?" asks about plans,
    "вы принимаете детей?" about a service; "do you accept cards?" is not ours to answer."""
    intents = found.intents
    if "ask_accepts" in intents:
        intents.discard("ask_accepts")
        if found.question is None:
            if found.insurance_id:
                intents.add("ask_insurances")
            elif found.service_id:
                intents.add("ask_services")
            else:
                found.asks = True
    if "ask_hours" in intents and found.doctor_id:
        # "does Dr. Lima work on Saturdays?": that doctor's days, not the clinic's hours.
        intents.discard("ask_hours")
        intents.add("ask_doctors")


def without_dates(text: str, lex: Lexicon) -> str:
    """The text with explicit dates blanked, so "December 1st" is not "the first option"."""
    text = re.sub(r"\b\d{1,2}[/.]\d{1,2}([/.]\d{2,4})?\b", " ", text)
    text = rx(lex.day_of_month).sub(" ", text)
    for month in lex.months:
        text = rx(rf"\b\d{{1,2}}(st|nd|rd|th)?\s+(de\s+|of\s+)?{month}\w*").sub(" ", text)
        text = rx(rf"\b{month}\w*\s+\d{{1,2}}(st|nd|rd|th)?\b").sub(" ", text)
    return text


def find_option(text: str, lex: Lexicon) -> tuple[int | None, str]:
    """An option number or ordinal; returns it and the text without it."""
    numbered = re.search(
        r"(?:^|\b(?:opcao|option|вариант|numero|number|n|#|no)\.?\s*)([1-3])\b(?![:h.]\d)", text
    )
    if numbered and (numbered.group(0).strip() == numbered.group(1) or len(text.split()) <= 4):
        start, end = numbered.span()
        return int(numbered.group(1)), text[:start] + " " + text[end:]
    if re.fullmatch(r"\s*#?\s*([1-3])\s*[.!)]?\s*", text):
        return int(text.strip(" #.!)")), ""
    for number, pattern in lex.ordinals.items():
        match = rx(pattern).search(text)
        if match is None:
            continue
        if lex.ordinal_prefix and not rx(lex.ordinal_prefix).search(text[: match.start()]):
            continue
        return number, text[: match.start()] + " " + text[match.end() :]
    return None, text


_TAKES_IT_BACK = re.compile(
    r"\b(?:nao|no|nope|nah|wait|hold on|espera\w*|espere\w*|perai"
    r"|нет|не надо|стоп|подожд\w*|погод\w*)\b"
)
"""Words that take a yes back wherever they stand in the message (folded text). The lexicon's
"no" patterns look at the start of a message, which is right for a reply but not for a lock: the
model may book only on a plain yes, and asking again costs one turn."""


def affirms(text: str, language: str) -> bool:
    """Whether a message is an explicit yes (and not also a no), in any supported language.

    The OpenAI loop uses it as a lock in code: the model may pass ``confirmed_by_patient`` only
    when the patient's latest message really says yes.
    """
    folded = normalize(text)
    if _TAKES_IT_BACK.search(folded):
        return False  # "sim... não, espera": a no or a "wait" anywhere takes the yes back
    for lex in (LEXICONS.get(language, LEXICONS["en"]), *LEXICONS.values()):
        said_yes = any(rx(p).search(folded) for p in lex.intents["yes"])
        said_no = any(rx(p).search(folded) for p in lex.intents["no"])
        if said_yes and not said_no:
            return True
    return False
