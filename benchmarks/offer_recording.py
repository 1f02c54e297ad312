"""What recording the learning data costs the offer path (issue 16).

The same searches run through `BookingService.find_offers` on one SQLite (or PostgreSQL)
database, alternately with the app's `DecisionRecorder` (the offer set and its offers inserted in
the search's own transaction, the previous set settled) and without it. Each search is released
after it is measured, so every search sees the same free time.

    PYTHONPATH=. python benchmarks/offer_recording.py [--searches 300] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time as timer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from tests.conftest import NOW, make_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clock import FixedClock
from voice_agent.scheduling.booking import BookingService
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import build_services
from voice_agent.store.db import make_engine

REQUESTS = (
    ("cardio-consulta", Preferences()),
    ("clinico-consulta", Preferences(periods=["afternoon"])),
    ("pediatria-consulta", Preferences()),
    ("derma-consulta", Preferences(weekdays=["tue", "thu"])),
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def measure(url: str, searches: int) -> dict[str, float]:
    clock = FixedClock(NOW)
    engine = make_engine(url)
    services = build_services(
        make_settings(url), clock=clock, alerter=ConsoleAlerter(), engine=engine
    )
    assert services.learning is not None
    plain = BookingService(
        engine,
        services.clinic,
        services.calendar,
        services.interactions,
        clock,
        scorer=services.learning.scorer,
    )
    times: dict[str, list[float]] = {"recorded": [], "plain": []}
    for n in range(searches + 20):  # the first 20 warm up
        service_id, prefs = REQUESTS[n % len(REQUESTS)]
        for name, booking in (("recorded", services.booking), ("plain", plain)):
            holder = f"{name}-{n}"
            started = timer.perf_counter()
            offers = await booking.find_offers(service_id, prefs, holder=holder)
            elapsed = (timer.perf_counter() - started) * 1000
            assert offers
            await services.booking.release_holds(holder)
            if n >= 20:
                times[name].append(elapsed)
    services.close()
    result = {}
    for name, values in times.items():
        result[f"{name}_p50_ms"] = round(statistics.median(values), 2)
        result[f"{name}_p95_ms"] = round(percentile(values, 95), 2)
    added = [r - p for r, p in zip(times["recorded"], times["plain"], strict=True)]
    result["added_p50_ms"] = round(statistics.median(added), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--postgres", help="also run on this PostgreSQL database (own schema)")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(("sqlite", f"sqlite:///{tmp}/offers.db"))
        if args.postgres:
            admin = make_engine(args.postgres)
            with admin.begin() as connection:
                connection.execute(text("DROP SCHEMA IF EXISTS bench_offers CASCADE"))
                connection.execute(text("CREATE SCHEMA bench_offers"))
            admin.dispose()
            runs.append(("postgresql", f"{args.postgres}?options=-csearch_path%3Dbench_offers"))
        for name, url in runs:
            result = asyncio.run(measure(url, args.searches))
            print(json.dumps({"benchmark": "offer_recording", "database": name, **result}))
            print(
                f"{name}: find_offers with recording p50 {result['recorded_p50_ms']} ms, p95 "
                f"{result['recorded_p95_ms']} ms; without p50 {result['plain_p50_ms']} ms, p95 "
                f"{result['plain_p95_ms']} ms; added p50 {result['added_p50_ms']} ms "
                f"(load average {os.getloadavg()[0]:.1f})"
            )
    print(f"reproduce: PYTHONPATH=. python benchmarks/offer_recording.py --searches {args.searches}"
          + (" --postgres URL" if args.postgres else ""))  # fmt: skip


if __name__ == "__main__":
    main()
