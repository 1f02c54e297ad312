"""CI guard of the red-flag evaluation corpus (benchmarks/data/red_flags): on its tuning part,
recall 100 % and at most 2 % false positives per language, suicide recognised as such. The
held-out part is reported by ``python benchmarks/red_flags.py`` and not enforced here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from voice_agent.safety import RedFlagDetector

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "red_flags.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("red_flags_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _benchmark()


@pytest.mark.parametrize("language", bench.LANGUAGES)
def test_the_corpus_meets_the_targets(language: str) -> None:
    corpus = bench.load_corpus(language)
    tune = corpus["tune"]
    assert len(tune["red_flags"]) >= 60 and len(tune["look_alikes"]) >= 60
    assert corpus["held_out"]["red_flags"] and corpus["held_out"]["look_alikes"]
    score = bench.score(RedFlagDetector(), tune)
    assert score.misses == [], f"missed red flags: {score.misses}"
    assert score.false_positive_rate <= bench.FALSE_POSITIVE_TARGET, score.wrong
    assert score.crisis_missed == 0, score.wrong
