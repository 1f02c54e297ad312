"""How well the offline receptionist understands patients it was not written for: multi-turn
scenarios in benchmarks/data/conversation_eval/<language>/*.yaml, kept apart from
tests/scenarios/ (the regression suite the engine was tuned on), each replayed in-process
through ``ConversationService`` on a fresh database and checked on the database state (the
appointments, the patient's name) and on key facts of the replies, never on exact wording.

    python benchmarks/conversation_eval.py [--language ru] [--verbose] [--only SUBSTRING]

Prints the pass rate per language (target: at least 95% each). A scenario file holds a list:

    clinic: klinika_zdorovye          # a sample clinic (default: clinica_sao_lucas)
    scenarios:
      - name: what it shows
        phone: "+5511987650001"       # default: one per scenario
        setup: {patient: {full_name: Maria Souza}, bookings: [{service: ecg, option: "1"}]}
        turns:
          - say: "Olá"
            expect: ["nome"]          # every fragment must appear (case and accents ignored)
            expect_any: ["a", "b"]    # at least one must appear
            reject: ["marcado"]       # none may appear
        final:
          patient: {full_name: Maria da Silva}
          appointments:               # every active or cancelled appointment of the caller
            - {service: ecg, doctor: dr-ana-souza, date: "2026-11-24", time: "09:30",
               status: booked, after: "16:00", before: "18:00", weekday: fri,
               attendee_name: Sofia Costa}  # who attends, when booked for a relative
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from voice_agent.alerts import ConsoleAlerter  # noqa: E402
from voice_agent.clinic.lookup import fold  # noqa: E402
from voice_agent.clock import FixedClock  # noqa: E402
from voice_agent.conversation.engine import ConversationService  # noqa: E402
from voice_agent.services import Services, build_services  # noqa: E402
from voice_agent.settings import DEFAULT_CLINIC_FILE, Settings  # noqa: E402
from voice_agent.store.db import transaction  # noqa: E402
from voice_agent.store.tables import Appointment, Patient  # noqa: E402
from voice_agent.tools.catalog import build_registry  # noqa: E402
from voice_agent.tools.context import ToolContext  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "conversation_eval"
LANGUAGES = ("pt-BR", "ru", "en")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))
"""Monday 2026-11-23 10:00 in São Paulo (16:00 in Moscow), as in the test suite."""
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

REGISTRY = build_registry()
"""The tools the channels offer, built once for this module (a build reads every signature)."""


@dataclass
class Scenario:
    language: str
    source: str
    name: str
    clinic: Path
    data: dict[str, Any]


@dataclass
class Outcome:
    scenario: Scenario
    problems: list[str] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def load(languages: tuple[str, ...] = LANGUAGES, only: str | None = None) -> list[Scenario]:
    scenarios = []
    for language in languages:
        for path in sorted((DATA / language).glob("*.yaml")):
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
            clinic = content.get("clinic")
            clinic_file = (
                DEFAULT_CLINIC_FILE.parent / f"{clinic}.yaml" if clinic else DEFAULT_CLINIC_FILE
            )
            for data in content["scenarios"]:
                if only and only.casefold() not in data["name"].casefold():
                    continue
                scenarios.append(Scenario(language, path.name, data["name"], clinic_file, data))
    return scenarios


def _services(clinic_file: Path, folder: Path) -> Services:
    settings = Settings(database_url=f"sqlite:///{folder / 'eval.db'}", clinic_file=clinic_file)
    return build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter())


async def _setup(services: Services, phone: str, setup: dict[str, Any], language: str) -> None:
    ctx = ToolContext(services, "setup", f"setup-{phone}", phone, language)
    if setup.get("patient"):
        result = await REGISTRY.dispatch("register_patient", setup["patient"], ctx)
        assert result.ok, result.output
    for booking in setup.get("bookings", []):
        booking = dict(booking)
        option = booking.pop("option", "1")
        found = await REGISTRY.dispatch("find_slots", booking, ctx)
        assert found.ok and found.output["options"], found.output
        booked = await REGISTRY.dispatch(
            "book_appointment", {"option": option, "confirmed_by_patient": True}, ctx
        )
        assert booked.ok, booked.output


def _check_reply(step: dict[str, Any], reply: str) -> list[str]:
    folded = fold(reply)
    problems = [
        f"expected {fragment!r}"
        for fragment in step.get("expect", [])
        if fold(str(fragment)) not in folded
    ]
    if "expect_any" in step and not any(fold(str(f)) in folded for f in step["expect_any"]):
        problems.append(f"expected one of {step['expect_any']!r}")
    problems += [
        f"unexpected {fragment!r}"
        for fragment in step.get("reject", [])
        if fold(str(fragment)) in folded
    ]
    return problems


def _check_final(services: Services, phone: str, final: dict[str, Any]) -> list[str]:
    clinic = services.clinic()
    with transaction(services.engine) as session:
        patient = session.execute(
            select(Patient).where(Patient.phone_hash == services.patients.phone_hash(phone))
        ).scalar_one_or_none()  # phones are encrypted at rest: found by their keyed hash
        rows = (
            list(
                session.execute(
                    select(Appointment)
                    .where(Appointment.patient_id == patient.id)
                    .order_by(Appointment.start)
                ).scalars()
            )
            if patient
            else []
        )
    problems: list[str] = []
    for key, value in (final.get("patient") or {}).items():
        got = getattr(patient, key, None) if patient else None
        if got != value:
            problems.append(f"patient {key}: {got!r} != {value!r}")
    if "appointments" not in final:
        return problems
    actual = []
    for row in rows:
        start = row.start.astimezone(clinic.tz)
        actual.append(
            {
                "service": row.service_id,
                "doctor": row.doctor_id,
                "date": start.date().isoformat(),
                "time": start.strftime("%H:%M"),
                "weekday": WEEKDAYS[start.weekday()],
                "status": row.status.value,
                "insurance": row.insurance_id,
                "attendee_name": row.attendee_name,  # booked for a child or relative
            }
        )
    wanted = final["appointments"]
    if len(actual) != len(wanted):
        return [*problems, f"{len(actual)} appointments, wanted {len(wanted)}: {actual}"]
    for got, expected in zip(actual, wanted, strict=True):
        for key, value in expected.items():
            if key == "after" and got["time"] < str(value):
                problems.append(f"appointment at {got['time']}, wanted from {value}")
            elif key == "before" and got["time"] >= str(value):
                problems.append(f"appointment at {got['time']}, wanted before {value}")
            elif key not in ("after", "before") and str(got.get(key)) != str(value):
                problems.append(f"appointment {key}: {got.get(key)!r} != {value!r}")
    return problems


async def run_one(scenario: Scenario, index: int) -> Outcome:
    outcome = Outcome(scenario)
    data = scenario.data
    folder = tempfile.TemporaryDirectory()
    services = _services(scenario.clinic, Path(folder.name))
    try:
        conversations = ConversationService(services, use_llm=False)
        phone = data.get("phone") or f"+551198{7700000 + index:07d}"
        if data.get("setup"):
            await _setup(services, phone, data["setup"], scenario.language)
        for number, step in enumerate(data["turns"], 1):
            reply = await conversations.handle(
                "whatsapp", f"eval-{index}", str(step["say"]), phone=phone, phone_verified=True
            )
            outcome.transcript.append((str(step["say"]), reply.text))
            outcome.problems += [f"turn {number}: {p}" for p in _check_reply(step, reply.text)]
        outcome.problems += _check_final(services, phone, data.get("final") or {})
    except Exception as exc:  # a crash is a failed scenario, reported, not the end of the run
        outcome.problems.append(f"crashed: {type(exc).__name__}: {exc}")
    finally:
        services.close()
        folder.cleanup()
    return outcome


async def run(scenarios: list[Scenario]) -> list[Outcome]:
    return [await run_one(s, i) for i, s in enumerate(scenarios)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--language", choices=LANGUAGES, action="append")
    parser.add_argument("--only", help="scenarios whose name contains this")
    parser.add_argument("--verbose", "-v", action="store_true", help="show failed transcripts")
    args = parser.parse_args()
    started = time.perf_counter()
    scenarios = load(tuple(args.language or LANGUAGES), args.only)
    outcomes = asyncio.run(run(scenarios))
    for outcome in outcomes:
        if outcome.passed:
            continue
        s = outcome.scenario
        print(f"FAIL {s.language}/{s.source}: {s.name}")
        for problem in outcome.problems:
            print(f"     {problem}")
        if args.verbose:
            for said, answered in outcome.transcript:
                print(f"       > {said}\n       < " + answered.replace("\n", "\n         "))
    print("offline receptionist, held-out conversations (benchmarks/data/conversation_eval)")
    total_passed = 0
    for language in args.language or LANGUAGES:
        mine = [o for o in outcomes if o.scenario.language == language]
        passed = sum(o.passed for o in mine)
        total_passed += passed
        if mine:
            print(f"{language:>6}: {passed}/{len(mine)} passed ({100 * passed / len(mine):.0f}%)")
    if outcomes:
        share = 100 * total_passed / len(outcomes)
        print(f"   all: {total_passed}/{len(outcomes)} passed ({share:.0f}%)")
    print(
        f"({time.perf_counter() - started:.1f} s) reproduce: python benchmarks/conversation_eval.py"
    )


if __name__ == "__main__":
    main()
