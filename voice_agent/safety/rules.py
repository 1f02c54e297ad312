"""Red-flag rules, read from ``voice_agent/safety/rules/<language>.yaml`` and compiled once.

A rule fires on a sentence when one of its ``any`` patterns is found, one of its ``with``
patterns too (if it has any), and none of its ``unless`` patterns. Russian rules also read Latin
text transliterated ("u rebenka sudorogi"); a ``native_script`` rule does not.

A ``soft`` rule names a symptom that is also talked about when it is over ("dor no peito que já
passou", "a stroke last year", "результаты рентгена"): it is vetoed by the language's
``not_now`` markers (resolved, remote past, negated, a document or a follow-up), unless a
``now`` marker says it is happening again ("agora", "again", "снова"). Hard rules (not
breathing, unresponsive, poisoning, suicide, pregnancy and child dangers) are never vetoed that
way: when in doubt, the patient gets the emergency number.

Patterns are regular expressions over folded text (see ``normalize.fold``); ``{gap}`` stands
for up to three words, ``{gap1}``, ``{gap2}`` and ``{gap5}`` for up to one, two and five.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from voice_agent.safety.normalize import fold_letters

RULES_DIR = Path(__file__).resolve().parent / "rules"
CATEGORIES = (
    "suicide",
    "pregnancy",
    "breathing",
    "anaphylaxis",
    "unconscious",
    "chest_pain",
    "stroke",
    "head",
    "seizure",
    "bleeding",
    "poisoning",
    "child",
    "infection",
    "blood_pressure",
    "abdomen",
    "injury",
    "declared",
)
"""Every category, most specific first: when two rules fire, the earlier category is reported
(a pregnant woman bleeding is a pregnancy emergency; suicidal intent with pills is suicide)."""

_MACROS = {
    "{gap}": r"(?:\w+ ){0,3}",
    "{gap1}": r"(?:\w+ )?",
    "{gap2}": r"(?:\w+ ){0,2}",
    "{gap5}": r"(?:\w+ ){0,5}",
}


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    category: str
    any: list[str] = Field(min_length=1)
    with_: list[str] = Field(default_factory=list, alias="with")
    unless: list[str] = Field(default_factory=list)
    soft: bool = False
    native_script: bool = False
    """Only on text written in the file's script, not on Latin text read as Russian: its words
    are also words of Latin languages once transliterated ("meningite" reads "менингите")."""


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: str
    script: str = Field(pattern=r"^(latin|cyrillic)$")
    vocabulary: list[str] = Field(default_factory=list)
    not_now: list[str] = Field(default_factory=list)
    now: list[str] = Field(default_factory=list)
    rules: list[RuleSpec]


def _compile(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    source = "|".join(f"(?:{_expand(p)})" for p in patterns)
    return re.compile(source)


_CAPTURING_GROUP = re.compile(r"(?<!\\)\((?!\?)")


def _expand(pattern: str) -> str:
    """Macros expanded, letters folded like the text, and every group made non-capturing: no
    rule reads a group back, and the combined trigger of a file with capturing groups searched
    about three times slower (Russian rules, measured)."""
    for macro, value in _MACROS.items():
        pattern = pattern.replace(macro, value)
    return fold_letters(_CAPTURING_GROUP.sub("(?:", pattern))


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    language: str
    trigger: re.Pattern[str]
    also: re.Pattern[str] | None
    unless: re.Pattern[str] | None
    soft: bool
    native_script: bool = False

    def fires(self, sentence: str) -> bool:
        if self.trigger.search(sentence) is None:
            return False
        if self.also is not None and self.also.search(sentence) is None:
            return False
        return self.unless is None or self.unless.search(sentence) is None


@dataclass(frozen=True)
class RuleSet:
    """The rules of one language: a combined trigger first, so most texts cost one search."""

    language: str
    script: str
    vocabulary: tuple[str, ...]
    rules: tuple[Rule, ...]
    any_trigger: re.Pattern[str]
    not_now: re.Pattern[str] | None
    now: re.Pattern[str] | None

    def not_now_in(self, sentence: str) -> bool:
        if self.not_now is None or self.not_now.search(sentence) is None:
            return False
        return self.now is None or self.now.search(sentence) is None


def load_rule_set(path: Path) -> RuleSet:
    spec = RuleFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    rules = []
    for rule in spec.rules:
        if rule.category not in CATEGORIES:
            raise ValueError(f"{path.name}: rule {rule.id}: unknown category {rule.category!r}")
        trigger = _compile(rule.any)
        assert trigger is not None
        rules.append(
            Rule(
                id=rule.id,
                category=rule.category,
                language=spec.language,
                trigger=trigger,
                also=_compile(rule.with_),
                unless=_compile(rule.unless),
                soft=rule.soft,
                native_script=rule.native_script,
            )
        )
    every = [p for rule in spec.rules for p in rule.any]
    any_trigger = _compile(every)
    assert any_trigger is not None
    return RuleSet(
        language=spec.language,
        script=spec.script,
        vocabulary=tuple(spec.vocabulary),
        rules=tuple(rules),
        any_trigger=any_trigger,
        not_now=_compile(spec.not_now),
        now=_compile(spec.now),
    )


def load_rule_sets(directory: Path = RULES_DIR) -> list[RuleSet]:
    return [load_rule_set(path) for path in sorted(directory.glob("*.yaml"))]
