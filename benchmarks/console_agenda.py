"""Time to serve the console's agenda: the whole clinic's day and one doctor's week, with every
working slot of the week booked or free, on SQLite through the real app (TestClient, logged in).

    python benchmarks/console_agenda.py [--appointments 120] [--rounds 20]

Each page reads the appointments with their patients (decrypting names and phones), the blocks,
the busy time, and runs the slot engine per doctor; the figure is what a receptionist waits for
after each action (post/redirect/get ends on this page).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.console.accounts import StaffAccounts, password_hasher
from voice_agent.scheduling.booking import BookingError
from voice_agent.scheduling.staff_desk import StaffDesk
from voice_agent.services import build_services
from voice_agent.settings import DEFAULT_CLINIC_FILE, Settings
from voice_agent.store.db import make_engine

NOW = datetime.fromisoformat("2026-11-23T10:00:00-03:00")
MONDAY = date(2026, 11, 30)
PASSWORD = "benchmark password"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appointments", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
    settings = Settings(
        database_url=str(engine.url),
        clinic_file=DEFAULT_CLINIC_FILE,
        staff_password_profile="CHEAPEST",
    )
    services = build_services(
        settings, clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine
    )
    account = StaffAccounts(engine, services.clock, password_hasher("CHEAPEST")).add(
        "bench@clinic.test", PASSWORD, "receptionist"
    )
    assert account.id is not None
    desk = StaffDesk(
        engine, services.booking, services.patients, services.interactions, services.clock
    )
    clinic = services.clinic()
    booked = 0

    async def fill() -> int:
        count = 0
        for doctor in clinic.doctors:
            slots = await desk.free_for(doctor.id, doctor.services[0], MONDAY, days=7, limit=500)
            for slot in slots[::2]:
                if count >= args.appointments:
                    return count
                try:
                    await desk.book(
                        account.id,  # type: ignore[arg-type]
                        name=f"Paciente Teste {count}",
                        phone=f"+55119{count:08d}",
                        doctor_id=doctor.id,
                        service_id=slot.service_id,
                        start=slot.start,
                        request_key=f"bench:{count}",
                    )
                    count += 1
                except BookingError:
                    continue
        return count

    booked = asyncio.run(fill())
    client = TestClient(create_app(settings, services))
    page = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    client.post(
        "/console/login",
        data={"csrf_token": token, "email": "bench@clinic.test", "password": PASSWORD},
        follow_redirects=False,
    )
    busiest = max(clinic.doctors, key=lambda d: len(d.services)).id
    pages = {
        "day, all doctors": f"/console/agenda?day={MONDAY + timedelta(days=1)}",
        "week, one doctor": f"/console/agenda?day={MONDAY}&view=week&doctor={busiest}",
    }
    print(f"{booked} appointments in the week of {MONDAY}, {len(clinic.doctors)} doctors")
    for label, path in pages.items():
        assert client.get(path).status_code == 200  # warm-up
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        times.sort()
        p95 = times[max(0, round(0.95 * len(times)) - 1)]
        print(
            f"{label:18} median {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms  "
            f"({len(response.content) // 1024} KiB, {args.rounds} rounds)"
        )
    services.close()


if __name__ == "__main__":
    main()
