"""The held-out conversation evaluation (benchmarks/conversation_eval.py) runs and its set is
big enough; a few of its scenarios, one per area, pass end to end on a fresh database."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.conversation_eval import LANGUAGES, load, run_one


def test_at_least_40_held_out_scenarios_per_language() -> None:
    scenarios = load()
    for language in LANGUAGES:
        assert len([s for s in scenarios if s.language == language]) >= 40, language


@pytest.mark.parametrize(
    "only",
    [
        "sou Bruno Dias",
        "Dra. Ana",
        "fim da tarde",
        "Domingo (clínica fechada)",
        "late afternoon",
        "February 31st",
        "Полное ФИО",
        "к Марии Петровне",
        "ОМС не покрывает",
    ],
)
def test_held_out_scenarios_pass(only: str) -> None:
    scenarios = load(only=only)
    assert scenarios, only
    outcome = asyncio.run(run_one(scenarios[0], 0))
    assert outcome.passed, (outcome.problems, outcome.transcript)
