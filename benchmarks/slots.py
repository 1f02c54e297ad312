"""Top-5 offer latency on a busy synthetic clinic: 50 doctors, 90 days, 20,000 appointments.

Each request runs `rank_offers` the way the booking service does: the busy intervals of the whole
horizon are handed over per doctor, unsorted, and the engine sorts, scans and ranks them itself.
Requests vary: no preference, a period, a weekday, one doctor, exclusions, earliest/latest times,
a date range, an insurance, plus a previous doctor and the doctors' load as context.

It also reports what the learned ranking adds (issue 16): the time spent in the scorer per
search with the rules alone and with `LearnedScorer` (features of every candidate and the
promoted model's predict_proba), the model being trained beforehand on this benchmark's own
candidates and stored and loaded through `ModelStore` on a SQLite file, as the app does.

    PYTHONPATH=. python benchmarks/slots.py [--requests 500] [--seed 1] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time as clock
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlmodel import SQLModel

from voice_agent.clinic.model import Clinic, Weekday
from voice_agent.learning.features import offers_features
from voice_agent.learning.models import ModelCache, ModelStore
from voice_agent.learning.ranker import LearnedScorer
from voice_agent.learning.training import new_ranking_pipeline
from voice_agent.scheduling.availability import Interval, booking_window
from voice_agent.scheduling.preferences import Preferences
from voice_agent.scheduling.ranking import (
    DEFAULT_SCORER,
    Candidate,
    Offer,
    RankingContext,
    Scorer,
    rank_offers,
)
from voice_agent.store.db import make_engine
from voice_agent.store.learning_tables import LearnedModel, ModelKind

DOCTORS = 50
APPOINTMENTS = 20_000
SPECIALTIES = ("cardiologia", "clinica-geral", "dermatologia", "pediatria", "ortopedia")
INSURANCES = ("unimed", "bradesco-saude", "amil")
NOW = datetime.fromisoformat("2026-11-23T10:00:00-03:00")


def build_clinic(rng: random.Random) -> Clinic:
    """50 doctors over 5 specialties, each with a consultation and a longer, senior procedure."""
    services: list[dict[str, Any]] = []
    for specialty in SPECIALTIES:
        services.append(
            {
                "id": f"{specialty}-consulta",
                "names": {"en": f"{specialty} consultation"},
                "specialty": specialty,
                "duration_minutes": 30,
                "private_price": "300",
                "insurance_prices": {"unimed": "0", "bradesco-saude": "0", "amil": "40"},
            }
        )
        services.append(
            {
                "id": f"{specialty}-procedimento",
                "names": {"en": f"{specialty} procedure"},
                "specialty": specialty,
                "duration_minutes": 45,
                "private_price": "600",
                "insurance_prices": {"unimed": "0"},
                "min_qualification": 3,
            }
        )
    doctors = []
    shapes = [
        [{"start": "08:00", "end": "17:00", "breaks": [{"start": "12:00", "end": "13:00"}]}],
        [{"start": "08:00", "end": "12:00"}, {"start": "14:00", "end": "19:00"}],
        [{"start": "13:00", "end": "19:00", "breaks": [{"start": "16:00", "end": "16:15"}]}],
        [{"start": "07:30", "end": "13:30"}],
    ]
    for n in range(DOCTORS):
        specialty = SPECIALTIES[n % len(SPECIALTIES)]
        workdays = rng.sample(list(Weekday)[:5], k=rng.choice((3, 4, 5)))
        if rng.random() < 0.3:
            workdays.append(Weekday.sat)
        doctors.append(
            {
                "id": f"dr-{n:02d}",
                "name": f"Dr. {n:02d}",
                "specialties": [specialty],
                "services": [f"{specialty}-consulta", f"{specialty}-procedimento"],
                "qualification": rng.randint(1, 5),
                "slot_minutes": rng.choice((15, 20, 30)),
                "languages": rng.choice((["pt-BR"], ["pt-BR", "en"], ["pt-BR", "ru"])),
                "working_hours": {day.value: rng.choice(shapes) for day in workdays},
            }
        )
    return Clinic.model_validate(
        {
            "name": "Benchmark Clinic",
            "timezone": "America/Sao_Paulo",
            "country": "BR",
            "languages": ["pt-BR", "en", "ru"],
            "default_language": "pt-BR",
            "address": "Rua A, 1",
            "phone": "+55 11 3456-7800",
            "staff_phone": "+55 11 3456-7801",
            "periods": [
                {"id": "morning", "start": "06:00", "end": "12:00"},
                {"id": "afternoon", "start": "12:00", "end": "18:00"},
                {"id": "evening", "start": "18:00", "end": "22:00"},
            ],
            "insurances": [
                {"id": "unimed", "name": "Unimed"},
                {"id": "bradesco-saude", "name": "Bradesco", "doctors": ["dr-00", "dr-01"]},
                {"id": "amil", "name": "Amil", "services": ["clinica-geral-consulta"]},
            ],
            "services": services,
            "doctors": doctors,
            "closures": [
                {"start": "2026-12-24", "end": "2026-12-25", "reason": "Natal"},
                {"start": "2027-01-11", "end": "2027-01-22", "doctors": ["dr-03", "dr-17"]},
            ],
        }
    )


def build_busy(clinic: Clinic, rng: random.Random) -> dict[str, list[Interval]]:
    """20,000 appointments on the doctors' working days, denser in the coming weeks, unsorted.

    In UTC, as the store returns them.
    """
    first, last = booking_window(clinic, NOW)
    span = (last - first).days
    busy: dict[str, list[Interval]] = defaultdict(list)
    placed = 0
    while placed < APPOINTMENTS:
        doctor = rng.choice(clinic.doctors)
        day = first + timedelta(days=min(span, int(rng.expovariate(1 / 25))))
        blocks = doctor.working_hours.get(list(Weekday)[day.weekday()])
        if not blocks:
            continue
        block = rng.choice(blocks)
        start_min = block.start.hour * 60 + block.start.minute
        end_min = block.end.hour * 60 + block.end.minute
        minute = start_min + rng.randrange(0, end_min - start_min - 15, 15)
        start = datetime.combine(day, time(minute // 60, minute % 60), clinic.tz).astimezone(UTC)
        busy[doctor.id].append(Interval(start, start + timedelta(minutes=rng.choice((15, 30, 45)))))
        placed += 1
    for intervals in busy.values():
        rng.shuffle(intervals)
    return dict(busy)


def build_requests(
    clinic: Clinic, rng: random.Random, count: int
) -> list[tuple[str, Preferences, RankingContext]]:
    first, _ = booking_window(clinic, NOW)
    services = [s.id for s in clinic.services]
    weekdays = list(Weekday)[:6]
    requests = []
    for n in range(count):
        service_id = rng.choice(services)
        service = clinic.service(service_id)
        assert service is not None
        doctors = [d.id for d in clinic.doctors if service_id in d.services]
        kind = n % 8
        prefs: dict[str, Any] = {}
        if kind == 1:
            prefs["periods"] = [rng.choice(("morning", "afternoon"))]
        elif kind == 2:
            prefs["weekdays"] = [rng.choice(weekdays)]
        elif kind == 3:
            prefs["doctor_id"] = rng.choice(doctors)
        elif kind == 4:
            prefs["exclude_weekdays"] = rng.sample(weekdays, 2)
            prefs["exclude_dates"] = [first + timedelta(days=d) for d in range(3)]
        elif kind == 5:
            prefs["earliest"] = time(15)
            prefs["weekdays"] = [rng.choice(weekdays)]
        elif kind == 6:
            start = first + timedelta(days=rng.randrange(0, 60))
            prefs["date_from"], prefs["date_to"] = start, start + timedelta(days=6)
        elif kind == 7:
            prefs["insurance_id"] = "unimed"
            prefs["latest"] = time(12)
        previous = {service.specialty: rng.choice(doctors)} if rng.random() < 0.3 else {}
        load = {d: rng.randrange(0, 40) for d in doctors}
        context = RankingContext(
            previous_doctors=previous,
            doctor_load=load,
            language=rng.choice(("pt-BR", "en", "ru")),
        )
        requests.append((service_id, Preferences.model_validate(prefs), context))
    return requests


def run(
    clinic: Clinic,
    busy: dict[str, list[Interval]],
    requests: list[tuple[str, Preferences, RankingContext]],
) -> tuple[list[float], Counter[int]]:
    latencies: list[float] = []
    offers: Counter[int] = Counter()
    for service_id, prefs, context in requests:
        started = clock.perf_counter()
        ranked = rank_offers(clinic, service_id, prefs, now=NOW, busy=busy, context=context)
        latencies.append((clock.perf_counter() - started) * 1000)
        offers[len(ranked)] += 1
    return latencies, offers


@dataclass
class TimedScorer:
    """Times each call of the scorer it wraps (the scoring of one search)."""

    inner: Scorer
    times: list[float] = field(default_factory=list)

    def score(
        self, candidates: Sequence[Candidate], context: RankingContext, clinic: Clinic
    ) -> list[Offer]:
        started = clock.perf_counter()
        offers = self.inner.score(candidates, context, clinic)
        self.times.append((clock.perf_counter() - started) * 1000)
        return offers


@dataclass
class Collect:
    """Keeps each search's candidate features, to train the benchmark's model."""

    rows: list[list[dict[str, float | str]]] = field(default_factory=list)

    def score(
        self, candidates: Sequence[Candidate], context: RankingContext, clinic: Clinic
    ) -> list[Offer]:
        offers = DEFAULT_SCORER.score(candidates, context, clinic)
        features = offers_features(candidates, context, clinic, [o.score for o in offers])
        self.rows.append(features)
        return offers


def learned_scorer(
    clinic: Clinic,
    busy: dict[str, list[Interval]],
    requests: list[tuple[str, Preferences, RankingContext]],
    rng: random.Random,
    directory: str,
) -> LearnedScorer:
    """A ranking model trained on synthetic choices (mornings, seniority and near dates
    preferred), stored and loaded the way the app does."""
    collect = Collect()
    for service_id, prefs, context in requests:
        rank_offers(clinic, service_id, prefs, now=NOW, busy=busy, context=context, scorer=collect)
    features: list[dict[str, float | str]] = []
    labels: list[int] = []
    for rows in collect.rows:
        utility = [
            float(f["morning"]) + 0.3 * float(f["seniority"]) - 0.2 * float(f["lead_days"])
            + rng.gauss(0, 0.5)
            for f in rows
        ]  # fmt: skip
        best = max(range(len(rows)), key=utility.__getitem__)
        features.extend(rows)
        labels.extend(int(i == best) for i in range(len(rows)))
    estimator = new_ranking_pipeline().fit(features, labels)
    engine = make_engine(f"sqlite:///{directory}/models.db")
    SQLModel.metadata.create_all(engine, tables=[LearnedModel.__table__])  # type: ignore[list-item]
    store = ModelStore(engine)
    store.save(
        ModelKind.ranking,
        estimator,
        promote=True,
        trained_until=NOW,
        examples=len(collect.rows),
        features=[str(n) for n in estimator.named_steps["encode"].get_feature_names_out()],
        metrics={},
        now=NOW,
    )
    cache = ModelCache(store, ModelKind.ranking)
    cache.refresh()
    assert cache.current(NOW) is not None
    return LearnedScorer(cache)


def scoring_cost(
    clinic: Clinic,
    busy: dict[str, list[Interval]],
    requests: list[tuple[str, Preferences, RankingContext]],
    learned: LearnedScorer,
    repeat: int = 3,
) -> dict[str, float]:
    """Scorer time per search, rules alone vs learned, on the same searches (paired). Each
    search is scored ``repeat`` times and the fastest counts: on a shared machine the slower
    runs measure other processes' time slices, not the scorer."""
    rules_times: list[float] = []
    model_times: list[float] = []
    for service_id, prefs, context in requests:
        context = replace(context, now=NOW, asked=prefs)
        for scorer, times in ((DEFAULT_SCORER, rules_times), (learned, model_times)):
            timed = TimedScorer(scorer)
            for _ in range(repeat):
                rank_offers(
                    clinic, service_id, prefs, now=NOW, busy=busy, context=context, scorer=timed
                )
            if timed.times:
                times.append(min(timed.times))
    added = [m - r for m, r in zip(model_times, rules_times, strict=True)]
    return {
        "rules_scoring_p95_ms": round(percentile(rules_times, 95), 3),
        "learned_scoring_p50_ms": round(statistics.median(model_times), 3),
        "learned_scoring_p95_ms": round(percentile(model_times, 95), 3),
        "learned_added_p50_ms": round(statistics.median(added), 3),
        "learned_added_p95_ms": round(percentile(added, 95), 3),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    clinic = build_clinic(rng)
    busy = build_busy(clinic, rng)
    requests = build_requests(clinic, rng, args.requests)
    run(clinic, busy, requests[:20])  # warm-up: imports, zoneinfo caches
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(clinic, busy, requests)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    latencies, offers = run(clinic, busy, requests)
    with tempfile.TemporaryDirectory() as directory:
        learned = learned_scorer(clinic, busy, build_requests(clinic, rng, 200), rng, directory)
        scoring_cost(clinic, busy, requests[:20], learned)  # warm-up
        cost = scoring_cost(clinic, busy, requests, learned)
    result = {
        "benchmark": "slots.rank_offers.top5",
        "doctors": len(clinic.doctors),
        "horizon_days": clinic.booking.horizon_days,
        "appointments": sum(len(v) for v in busy.values()),
        "requests": len(requests),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        "offers_returned": sum(n * c for n, c in offers.items()),
        "requests_by_offer_count": {str(n): c for n, c in sorted(offers.items())},
        **cost,
        "load_average_1m": round(os.getloadavg()[0], 1),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
    print(
        f"rank_offers top-5 over {result['doctors']} doctors, {result['horizon_days']} days, "
        f"{result['appointments']} appointments: p50 {result['p50_ms']} ms, "
        f"p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms "
        f"({result['offers_returned']} offers for {result['requests']} requests)"
    )
    print(
        f"learned scoring per search: p50 {cost['learned_scoring_p50_ms']} ms, p95 "
        f"{cost['learned_scoring_p95_ms']} ms (rules alone p95 {cost['rules_scoring_p95_ms']} "
        f"ms); added by the model: p50 {cost['learned_added_p50_ms']} ms, "
        f"p95 {cost['learned_added_p95_ms']} ms (best of 3 per search)"
    )
    print(f"reproduce: PYTHONPATH=. python benchmarks/slots.py --requests {args.requests} "
          f"--seed {args.seed}")  # fmt: skip


if __name__ == "__main__":
    main()
