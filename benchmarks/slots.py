"""Top-5 offer latency on a busy synthetic clinic: 50 doctors, 90 days, 20,000 appointments.

Each request runs `rank_offers` the way the booking service does: the busy intervals of the whole
horizon are handed over per doctor, unsorted, and the engine sorts, scans and ranks them itself.
Requests vary: no preference, a period, a weekday, one doctor, exclusions, earliest/latest times,
a date range, an insurance, plus a previous doctor and the doctors' load as context.

    PYTHONPATH=. python benchmarks/slots.py [--requests 500] [--seed 1] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import statistics
import sys
import time as clock
from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import Any

from voice_agent.clinic.model import Clinic, Weekday
from voice_agent.scheduling.availability import Interval, booking_window
from voice_agent.scheduling.preferences import Preferences
from voice_agent.scheduling.ranking import RankingContext, rank_offers

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
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
    print(
        f"rank_offers top-5 over {result['doctors']} doctors, {result['horizon_days']} days, "
        f"{result['appointments']} appointments: p50 {result['p50_ms']} ms, "
        f"p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms "
        f"({result['offers_returned']} offers for {result['requests']} requests)"
    )
    print(f"reproduce: PYTHONPATH=. python benchmarks/slots.py --requests {args.requests} "
          f"--seed {args.seed}")  # fmt: skip


if __name__ == "__main__":
    main()
