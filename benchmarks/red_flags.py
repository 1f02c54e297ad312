"""Red-flag detector on its evaluation corpus: recall and false-positive rate per language.

    python benchmarks/red_flags.py [--show-misses] [--repeat 20]

The corpus (``benchmarks/data/red_flags/<language>.yaml``) was written before the rules were
tuned and is kept apart from the tests' own examples. Its ``tune`` part was looked at while the
rules were written; its ``held_out`` part was not, and is reported on its own line. Targets on
the tuning part: recall 100 %, false positives at most 2 %. A suicide/self-harm utterance must
also be recognised as such (it changes the number the patient gets). Latency is the detector
alone, per utterance, over every utterance of the corpus (``--repeat`` rounds, after one warm-up
round that also compiles the rules).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_agent.safety import RedFlagDetector  # noqa: E402

CORPUS = ROOT / "benchmarks" / "data" / "red_flags"
LANGUAGES = ("pt-BR", "ru", "en")
RECALL_TARGET = 1.0
FALSE_POSITIVE_TARGET = 0.02


@dataclass
class Score:
    red_flags: int = 0
    caught: int = 0
    look_alikes: int = 0
    false_positives: int = 0
    crisis_missed: int = 0
    misses: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.red_flags if self.red_flags else 1.0

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.look_alikes if self.look_alikes else 0.0

    def meets_targets(self) -> bool:
        return (
            self.recall >= RECALL_TARGET
            and self.false_positive_rate <= FALSE_POSITIVE_TARGET
            and self.crisis_missed == 0
        )


def load_corpus(language: str) -> dict[str, dict[str, list]]:
    data = yaml.safe_load((CORPUS / f"{language}.yaml").read_text(encoding="utf-8"))
    return {part: data[part] for part in ("tune", "held_out")}


def score(detector: RedFlagDetector, part: dict[str, list]) -> Score:
    result = Score()
    for item in part["red_flags"]:
        result.red_flags += 1
        flag = detector.detect(item["text"])
        if flag is None:
            result.misses.append(item["text"])
            continue
        result.caught += 1
        if (item["category"] == "suicide") != flag.crisis:
            result.wrong.append(f"{item['text']} -> {flag.category} ({flag.rule})")
            if item["category"] == "suicide":
                result.crisis_missed += 1
    for text in part["look_alikes"]:
        result.look_alikes += 1
        flag = detector.detect(text)
        if flag is not None:
            result.false_positives += 1
            result.wrong.append(f"{text} -> {flag.category} ({flag.rule}) [look-alike]")
    return result


def latency_us(detector: RedFlagDetector, texts: list[str], repeat: int) -> tuple[float, float]:
    for text in texts:
        detector.detect(text)
    samples = []
    for _ in range(repeat):
        for text in texts:
            started = time.perf_counter_ns()
            detector.detect(text)
            samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tune-only", action="store_true", help="leave the held-out part out")
    args = parser.parse_args()
    detector = RedFlagDetector()
    ok = True
    texts: list[str] = []
    print(f"{'language':8} {'part':9} {'recall':>14} {'false pos.':>14} {'crisis ok':>9}")
    for language in LANGUAGES:
        for part_name, part in load_corpus(language).items():
            if args.tune_only and part_name == "held_out":
                continue
            texts += [item["text"] for item in part["red_flags"]] + part["look_alikes"]
            result = score(detector, part)
            print(
                f"{language:8} {part_name:9} "
                f"{result.caught:3}/{result.red_flags:<3} {result.recall:6.1%} "
                f"{result.false_positives:3}/{result.look_alikes:<3} "
                f"{result.false_positive_rate:6.1%} "
                f"{'yes' if result.crisis_missed == 0 else 'NO':>9}"
            )
            if part_name == "tune":
                ok = ok and result.meets_targets()
            if args.show_misses:
                for text in result.misses:
                    print(f"    missed: {text}")
                for text in result.wrong:
                    print(f"    wrong:  {text}")
    p50, p99 = latency_us(detector, texts, args.repeat)
    print(f"detector latency per utterance: p50 {p50:.0f} µs, p99 {p99:.0f} µs ({len(texts)})")
    print("targets (tune part: recall 100 %, false positives <= 2 %):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
