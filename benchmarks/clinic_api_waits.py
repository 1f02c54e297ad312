"""Who waits on a slow clinic API: one conversation books while the API takes ``--delay`` seconds
to answer; meanwhile another conversation searches and asks a question. Then the API answers 503:
how long until the patient is told, and is the clinic's alert delivered. On SQLite (one writer at
a time) and PostgreSQL. Nothing may wait on the API call: it runs outside every transaction.

Reproduce:  python benchmarks/clinic_api_waits.py [--delay 2]
            [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from tests.conftest import NOW
from tests.fakes.clinic_api_fake import ClinicApiFake
from tests.integration.integration_env import build, clinic_file
from voice_agent.clock import FixedClock
from voice_agent.scheduling.booking import BookingError, BookingRequest
from voice_agent.scheduling.preferences import Preferences
from voice_agent.store.db import make_engine
from voice_agent.store.tables import InteractionKind


async def run(url: str, delay: float, label: str, tmp: Path) -> None:
    with ClinicApiFake() as api:
        services = build(
            make_engine(url),
            FixedClock(NOW),
            clinic_file=clinic_file(tmp, "clinic_api"),
            clinic_api_url=api.base_url,
            clinic_api_auth_header="Authorization: Bearer clinic-token",
            clinic_api_timeout_seconds=delay + 3,
        )
        booking = services.booking
        patient = await services.patients.find_or_create("+5511987650001")
        await services.patients.update(patient.id, full_name="Ana Costa")
        other = await services.patients.find_or_create("+5511987650002")
        offers = await booking.find_offers("cardio-consulta", Preferences(), holder="a")
        api.fail_next(1, 200, delay=delay, method="POST")
        started = time.perf_counter()
        request = BookingRequest(patient.id, "voice", "a")
        task = asyncio.create_task(booking.book(request, offers[0].hold_id))
        await asyncio.sleep(0.2)  # the create is in flight
        meanwhile = time.perf_counter()
        await booking.find_offers(
            "clinico-consulta", Preferences(), holder="b", patient_id=other.id
        )
        await services.interactions.record(
            InteractionKind.information, channel="whatsapp", patient_id=other.id
        )
        waited = time.perf_counter() - meanwhile
        await task
        total = time.perf_counter() - started
        offers = await booking.find_offers("cardio-consulta", Preferences(), holder="c")
        api.fail_next(1, 503, method="POST")
        started = time.perf_counter()
        try:
            await booking.book(BookingRequest(patient.id, "voice", "c"), offers[0].hold_id)
            told = "booked"
        except BookingError as error:
            told = error.code
        answered = time.perf_counter() - started
        report = await services.outbox.drain()
        print(
            f"{label}: booking with a {delay:.0f} s API call took {total:.2f} s; another "
            f"conversation's search + question meanwhile {waited * 1000:.0f} ms; an API 503 "
            f"told the patient '{told}' in {answered * 1000:.0f} ms; alerts delivered: "
            f"{report.by_kind.get('alert', 0)}"
        )
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{tmp}/bench.db", args.delay, "SQLite", Path(tmp)))
        if args.postgres:
            admin = make_engine(args.postgres)
            with admin.begin() as connection:
                connection.execute(text("DROP SCHEMA IF EXISTS bench_clinic_api CASCADE"))
                connection.execute(text("CREATE SCHEMA bench_clinic_api"))
            admin.dispose()
            url = f"{args.postgres}?options=-csearch_path%3Dbench_clinic_api"
            asyncio.run(run(url, args.delay, "PostgreSQL", Path(tmp)))


if __name__ == "__main__":
    main()
