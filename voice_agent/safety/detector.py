"""The red-flag detector: pure, deterministic, no network, a few tens of microseconds a text.

Every rule set runs on every text, whatever language the conversation is in (a Portuguese
speaker may type "help", a Russian one may write in Latin letters): Latin-script rules on the
folded text, Russian rules on the Cyrillic text or, for a Latin text, on its reading as
transliterated Russian. Each sentence is judged on its own, so "he had a stroke last year. Now
his face is drooping" still fires on the second sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from voice_agent.safety.normalize import Speller, fold, has_cyrillic, has_latin, to_cyrillic
from voice_agent.safety.rules import CATEGORIES, RuleSet, load_rule_sets

_SENTENCES = re.compile(r"(?:(?<!\d)\.|\.(?!\d)|[!?;\n])+|\s+-\s+")
"""Sentence ends; a dot between two digits is a decimal ("febre de 38.5 e nuca dura"), not one."""
MAX_CHARS = 5000
"""Only the start of a very long text is read: a message is not a novel, and time is bounded."""


@dataclass(frozen=True)
class RedFlag:
    """What was heard: the category (which decides the number and the words) and the rule."""

    category: str
    rule: str
    language: str

    @property
    def crisis(self) -> bool:
        """Suicidal thoughts or self-harm: the crisis line comes first."""
        return self.category == "suicide"


class RedFlagDetector:
    def __init__(self, rule_sets: list[RuleSet] | None = None) -> None:
        sets = rule_sets if rule_sets is not None else load_rule_sets()
        self._latin = [s for s in sets if s.script == "latin"]
        self._cyrillic = [s for s in sets if s.script == "cyrillic"]
        self._latin_speller = Speller(w for s in self._latin for w in s.vocabulary)
        self._cyrillic_speller = Speller(w for s in self._cyrillic for w in s.vocabulary)
        self._rank = {category: index for index, category in enumerate(CATEGORIES)}

    def detect(self, text: str) -> RedFlag | None:
        """The most specific red flag in ``text``, or None."""
        if not text:
            return None
        found: list[RedFlag] = []
        for raw in _SENTENCES.split(text[:MAX_CHARS]):
            sentence = fold(raw)
            if not sentence:
                continue
            if has_latin(sentence):
                latin = self._latin_speller.correct(sentence)
                found += _judge(self._latin, latin)
                if not has_cyrillic(raw):
                    translit = self._cyrillic_speller.correct(to_cyrillic(sentence))
                    found += _judge(self._cyrillic, translit, transliterated=True)
            if has_cyrillic(raw):
                found += _judge(self._cyrillic, self._cyrillic_speller.correct(sentence))
        if not found:
            return None
        return min(found, key=lambda flag: self._rank[flag.category])


def _judge(
    rule_sets: list[RuleSet], sentence: str, *, transliterated: bool = False
) -> list[RedFlag]:
    """Rules of every set of one script; a soft rule is vetoed by the markers of any of them
    ("convulsão há dois anos" is past whichever language's seizure rule fired)."""
    found = []
    vetoed: bool | None = None
    for rule_set in rule_sets:
        if rule_set.any_trigger.search(sentence) is None:
            continue
        for rule in rule_set.rules:
            if (transliterated and rule.native_script) or not rule.fires(sentence):
                continue
            if rule.soft:
                if vetoed is None:
                    vetoed = _not_now(rule_sets, sentence)
                if vetoed:
                    continue
            found.append(RedFlag(rule.category, rule.id, rule_set.language))
    return found


def _not_now(rule_sets: list[RuleSet], sentence: str) -> bool:
    over = any(s.not_now is not None and s.not_now.search(sentence) for s in rule_sets)
    if not over:
        return False
    return not any(s.now is not None and s.now.search(sentence) for s in rule_sets)


@lru_cache(maxsize=1)
def default_detector() -> RedFlagDetector:
    """One detector per process, built on first use (compiling the rules takes a few ms)."""
    return RedFlagDetector()


def detect_red_flag(text: str) -> RedFlag | None:
    return default_detector().detect(text)
