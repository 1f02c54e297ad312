"""Booking race: N concurrent attempts on one slot, repeated R times, on SQLite and PostgreSQL.

Prints winners per race (must be exactly 1 every time) and bookings per second.
Reproduce:  python benchmarks/booking_race.py [--attempts 50] [--races 100]
            [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voice_agent.alerts import ConsoleAlerter
from voice_agent.clock import FixedClock
from voice_agent.scheduling.availability import Slot
from voice_agent.scheduling.booking import BookingError, BookingRequest
from voice_agent.services import Services, build_services
from voice_agent.settings import Settings
from voice_agent.store.db import make_engine

TZ = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)


def build(url: str) -> Services:
    engine = make_engine(url, pool_size=25)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS bench_race CASCADE"))
            connection.execute(text("CREATE SCHEMA bench_race"))
        engine.dispose()
        engine = make_engine(f"{url}?options=-csearch_path%3Dbench_race", pool_size=25)
    settings = Settings(database_url=url)
    return build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine)


def slots(count: int) -> list[Slot]:
    """Distinct bookable 15-minute ECG slots of Dr. Carlos Lima (Tue/Thu 9-12:30, 13:30-18)."""
    result: list[Slot] = []
    day = datetime(2026, 11, 24, tzinfo=TZ)
    while len(result) < count:
        if day.weekday() in (1, 3) and day.date().isoformat() not in ("2026-12-24", "2026-12-31"):
            for hour, minute in [(h, m) for h in range(9, 18) for m in (0, 15, 30, 45)]:
                if (12, 30) <= (hour, minute) < (13, 30):
                    continue
                start = day.replace(hour=hour, minute=minute)
                result.append(Slot("dr-carlos-lima", "ecg", start, start + timedelta(minutes=15)))
        day += timedelta(days=1)
    return result[:count]


async def race(services: Services, patients: list[str], slot: Slot) -> int:
    """All attempts start together on one event loop, as concurrent callers do in one process."""

    async def attempt(patient_id: str) -> bool:
        request = BookingRequest(patient_id=patient_id, channel="bench", holder=patient_id)
        try:
            await services.booking.book_slot(request, slot)
        except BookingError:
            return False
        return True

    return sum(await asyncio.gather(*(attempt(p) for p in patients)))


def run(url: str, attempts: int, races: int) -> dict[str, object]:
    services = build(url)

    async def patients() -> list[str]:
        return [
            (await services.patients.find_or_create(f"+5511987{600000 + i:06d}")).id
            for i in range(attempts)
        ]

    ids = asyncio.run(patients())

    async def races_in_one_loop() -> list[int]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(16))
        return [await race(services, ids, slot) for slot in slots(races)]

    started = time.perf_counter()
    winners = asyncio.run(races_in_one_loop())
    elapsed = time.perf_counter() - started
    services.close()
    return {
        "database": services.engine.dialect.name,
        "attempts_per_race": attempts,
        "races": races,
        "winners_min": min(winners),
        "winners_max": max(winners),
        "races_with_exactly_one_winner": sum(1 for w in winners if w == 1),
        "attempts_per_second": round(attempts * races / elapsed, 1),
        "bookings_per_second": round(sum(winners) / elapsed, 1),
        "mean_race_ms": round(elapsed / races * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attempts", type=int, default=50)
    parser.add_argument("--races", type=int, default=100)
    parser.add_argument("--postgres", default=None, help="PostgreSQL URL to race on as well")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = [run(f"sqlite:///{folder}/race.db", args.attempts, args.races)]
    if args.postgres:
        results.append(run(args.postgres, args.attempts, args.races))
    for result in results:
        print(json.dumps(result))
        print(
            f"{result['database']}: {result['races_with_exactly_one_winner']}/{result['races']} "
            f"races had exactly one winner (min {result['winners_min']}, max "
            f"{result['winners_max']}); {result['attempts_per_second']} attempts/s, "
            f"{result['mean_race_ms']} ms per race of {result['attempts_per_race']}"
        )


if __name__ == "__main__":
    main()
