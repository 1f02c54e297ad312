"""A simulated clinic history to evaluate the learned offer ranking and the no-show model.

Patients with hidden preferences (their previous doctor, mornings or afternoons, near dates,
senior doctors; each with a no-show propensity so the clinic's rate lands in the 7-19% reported
for Brazilian clinics) call a 12-doctor clinic. Everything runs through the real code paths on a
real database: `BookingService.find_offers` ranks, holds and records each offer set, the patient
books (`book`, which settles the set as chosen), asks for other times (a new search), hangs up
(`release_holds`: rejected) or goes quiet (`settle_abandoned`: abandoned), confirms
(`BookingService.confirm`), and staff mark attendance (`mark_attendance`). Then
`train_ranking` and `train_no_show` train on the first months, and both models are measured on
the rest: first-offer acceptance and MRR for the rules and the model on the same offer sets, and
the no-show model's ROC AUC, Brier score and reliability bins.

    PYTHONPATH=. python benchmarks/ranking_eval.py [--months 4] [--train-months 3]
        [--calls-per-day 14] [--seed 7] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time as timer
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from tests.conftest import make_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clinic.model import Clinic, Weekday
from voice_agent.clock import FixedClock
from voice_agent.learning.attendance import mark_attendance
from voice_agent.learning.decisions import decision_counts, settle_abandoned
from voice_agent.learning.models import ModelStore
from voice_agent.learning.noshow import calibration, load_examples, probability, train_no_show
from voice_agent.learning.training import (
    load_decisions,
    model_scores,
    rank_metrics,
    rules_scores,
    train_ranking,
)
from voice_agent.scheduling.booking import BookingError, BookingRequest
from voice_agent.scheduling.offers import HeldOffer
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine

TZ = ZoneInfo("America/Sao_Paulo")
START = datetime(2026, 1, 5, 8, 0, tzinfo=TZ)  # a Monday
SPECIALTIES = ("cardiologia", "clinica-geral", "dermatologia")
SHAPES = (
    [{"start": "08:00", "end": "12:00"}],
    [{"start": "08:00", "end": "17:00", "breaks": [{"start": "12:00", "end": "13:00"}]}],
    [{"start": "13:00", "end": "19:00"}],
    [{"start": "10:00", "end": "16:00"}],
)


def clinic_data(rng: random.Random) -> dict[str, Any]:
    """Twelve doctors, four per specialty, of seniority 1-5 and varied hours."""
    services = [
        {
            "id": f"{s}-consulta",
            "names": {"en": f"{s} consultation", "pt-BR": f"consulta {s}", "ru": s},
            "specialty": s,
            "duration_minutes": 30,
            "private_price": "300",
        }
        for s in SPECIALTIES
    ]
    doctors = []
    for n in range(12):
        specialty = SPECIALTIES[n % 3]
        days = rng.sample(["mon", "tue", "wed", "thu", "fri"], k=rng.choice((3, 4, 5)))
        doctors.append(
            {
                "id": f"dr-{n:02d}",
                "name": f"Dr. {n:02d}",
                "specialties": [specialty],
                "services": [f"{specialty}-consulta"],
                "qualification": 1 + n % 5,
                "slot_minutes": 30,
                "languages": ["pt-BR"],
                "working_hours": {d: rng.choice(SHAPES) for d in days},
            }
        )
    return {
        "name": "Clínica Simulada",
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
        "services": services,
        "doctors": doctors,
        "booking": {"horizon_days": 60},
    }


@dataclass
class Patient:
    """Hidden preferences: the simulator knows them, the clinic never sees them."""

    id: str
    channel: str
    loyal: float
    """Utility of the doctor seen before for this specialty."""
    morning: float
    """Utility of a morning slot (negative: prefers afternoons)."""
    near: float
    """Utility lost per day of waiting."""
    senior: float
    """Utility per level of seniority."""
    no_show: float
    """Base no-show propensity."""
    demanding: float
    """Below this utility nothing offered is good enough."""
    previous: dict[str, str] = field(default_factory=dict)
    history: list[bool] = field(default_factory=list)
    """Past no-shows (True) and attendances (False)."""


def make_patient(rng: random.Random, patient_id: str) -> Patient:
    return Patient(
        id=patient_id,
        channel=rng.choice(("voice", "voice", "whatsapp", "chat")),
        loyal=rng.choice((2.5, 2.0, 1.5, 0.2)),
        morning=rng.choice((1.6, 1.2, 0.8, -0.6)),
        near=rng.uniform(0.05, 0.3),
        senior=rng.choice((0.6, 0.45, 0.3, 0.0)),
        no_show=min(0.5, rng.betavariate(2, 20)),
        demanding=rng.uniform(0.0, 2.5),
    )


def utility(patient: Patient, offer: HeldOffer, rank: int, clinic: Clinic, now: datetime) -> float:
    """What the patient makes of an offer, from the slot itself (not from recorded features)."""
    doctor = clinic.doctors_by_id[offer.slot.doctor_id]
    service = clinic.service(offer.slot.service_id)
    assert service is not None
    local = offer.slot.start.astimezone(clinic.tz)
    days = (offer.slot.start - now).total_seconds() / 86_400
    value = -patient.near * days + patient.senior * doctor.qualification
    value += patient.morning if local.hour < 12 else 0.0
    if patient.previous.get(service.specialty) == doctor.id:
        value += patient.loyal
    return value - 0.2 * (rank - 1)  # people take what is said first a little more often


def no_show_probability(
    patient: Patient, start: datetime, booked: datetime, confirmed: bool
) -> float:
    local = start.astimezone(TZ)
    p = patient.no_show
    p *= 1.6 if (start - booked).days > 14 else 1.0
    p *= 1.25 if local.weekday() in (0, 4) else 1.0
    p *= 1.3 if local.hour < 9 else 1.0
    p *= 0.85 if patient.channel == "whatsapp" else 1.0
    p *= 0.55 if confirmed else 1.35
    p *= 1.5 if sum(patient.history[-3:]) >= 1 else 1.0
    return min(p, 0.9)


class Simulation:
    def __init__(self, services: Services, clock: FixedClock, rng: random.Random, patients: int):
        self.services = services
        self.clock = clock
        self.rng = rng
        self.clinic = services.clinic()
        self.patients: list[Patient] = []
        self.patient_count = patients
        self.booked: list[tuple[str, Patient, datetime, datetime]] = []
        """(appointment id, patient, start, booked at)"""
        self.confirmed: set[str] = set()
        self.asked: set[str] = set()
        self.conversations = 0

    async def create_patients(self) -> None:
        for n in range(self.patient_count):
            row = await self.services.patients.find_or_create(f"+55119{n:08d}", "pt-BR")
            self.patients.append(make_patient(self.rng, row.id))

    def pick_patient(self) -> Patient:
        # A few patients call often (chronic care), most now and then.
        index = min(int(self.rng.paretovariate(1.2)) - 1, len(self.patients) - 1)
        return self.patients[(index * 7919 + self.rng.randrange(3)) % len(self.patients)]

    async def conversation(self, patient: Patient, at: datetime) -> None:
        self.clock.set(at)
        self.conversations += 1
        holder = f"sim-{self.conversations}"
        specialty = self.rng.choice(SPECIALTIES)
        if self.rng.random() < 0.7 and patient.previous:
            specialty = self.rng.choice(sorted(patient.previous))
        roll = self.rng.random()
        prefs: dict[str, Any] = {}
        if roll < 0.2:
            prefs["periods"] = [self.rng.choice(("morning", "afternoon"))]
        elif roll < 0.3:
            prefs["weekdays"] = [self.rng.choice(list(Weekday)[:5])]
        service_id = f"{specialty}-consulta"
        for attempt in (1, 2):
            offers = await self.services.booking.find_offers(
                service_id,
                Preferences.model_validate(prefs),
                holder=holder,
                patient_id=patient.id,
                language="pt-BR",
            )
            if not offers:
                break
            now = self.clock.now()
            scored = [
                (utility(patient, o, i, self.clinic, now) + 0.7 * self._gumbel(), o)
                for i, o in enumerate(offers, 1)
            ]
            best, offer = max(scored, key=lambda pair: pair[0])
            if best > patient.demanding + self._gumbel() * 0.5:
                await self.book(patient, holder, offer)
                break
            ending = self.rng.random()
            if attempt == 1 and ending < 0.55:  # "anything later / another time?"
                first = min(o.slot.start for o in offers).astimezone(self.clinic.tz).date()
                prefs = {**prefs, "date_from": first + timedelta(days=self.rng.choice((2, 5, 9)))}
                self.clock.advance(timedelta(seconds=40))
                continue
            if ending < 0.8:
                await self.services.booking.release_holds(holder)  # hangs up: rejected
            break  # else silence: the set is left to expire (abandoned)

    def _gumbel(self) -> float:
        return -math.log(-math.log(self.rng.random() or 1e-12))

    async def book(self, patient: Patient, holder: str, offer: HeldOffer) -> None:
        self.clock.advance(timedelta(seconds=60))
        request = BookingRequest(
            patient_id=patient.id,
            channel=patient.channel,
            holder=holder,
            request_key=f"{holder}:book:{offer.hold_id}",
        )
        try:
            appointment = await self.services.booking.book(request, offer.hold_id)
        except BookingError:
            return
        await self.services.booking.release_holds(holder)
        specialty = offer.slot.service_id.removesuffix("-consulta")
        patient.previous[specialty] = offer.slot.doctor_id
        self.booked.append((appointment.id, patient, appointment.start, self.clock.now()))

    async def confirmations(self, day: date) -> None:
        """At 07:30 the clinic asks the patients of the next three days to confirm (once);
        some reply."""
        self.clock.set(datetime.combine(day, time(7, 30), tzinfo=TZ))
        for appointment_id, patient, start, _ in self.booked:
            ahead = (start.astimezone(TZ).date() - day).days
            if not 0 <= ahead <= 3 or appointment_id in self.asked:
                continue
            self.asked.add(appointment_id)
            if self.rng.random() < 0.85 - 2.5 * patient.no_show:
                await self.services.booking.confirm(patient.id, appointment_id, channel="whatsapp")
                self.confirmed.add(appointment_id)

    def attendance(self, day: date) -> tuple[int, int]:
        """At 20:00 staff mark the day's appointments."""
        self.clock.set(datetime.combine(day, time(20), tzinfo=TZ))
        now = self.clock.now()
        shows = misses = 0
        for appointment_id, patient, start, booked in self.booked:
            if start.astimezone(TZ).date() != day:
                continue
            confirmed = appointment_id in self.confirmed
            missed = self.rng.random() < no_show_probability(patient, start, booked, confirmed)
            mark_attendance(
                self.services.engine, appointment_id, "no-show" if missed else "attended", now
            )
            patient.history.append(missed)
            misses += missed
            shows += not missed
        settle_abandoned(self.services.engine, now)
        return shows, misses

    async def run(self, days: int, calls_per_day: int) -> dict[str, int]:
        await self.create_patients()
        totals = {"attended": 0, "no_show": 0}
        for offset in range(days):
            day = START.date() + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            await self.confirmations(day)
            moments = sorted(
                datetime.combine(day, time(8), tzinfo=TZ)
                + timedelta(minutes=self.rng.randrange(0, 10 * 60))
                for _ in range(self.rng.randint(calls_per_day - 3, calls_per_day + 3))
            )
            for moment in moments:
                await self.conversation(self.pick_patient(), moment)
            shows, misses = self.attendance(day)
            totals["attended"] += shows
            totals["no_show"] += misses
        return totals


def months_later(start: datetime, months: int) -> datetime:
    return start + timedelta(days=round(30.4 * months))


async def simulate(url: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    clinic_file = tmp / "clinic.yaml"
    clinic_file.write_text(yaml.safe_dump(clinic_data(rng), allow_unicode=True), encoding="utf-8")
    clock = FixedClock(START)
    engine = make_engine(url)
    services = build_services(
        make_settings(url, clinic_file=clinic_file),
        clock=clock,
        alerter=ConsoleAlerter(),
        engine=engine,
    )
    started = timer.perf_counter()
    simulation = Simulation(services, clock, rng, args.patients)
    end = months_later(START, args.months)
    totals = await simulation.run((end - START).days, args.calls_per_day)
    simulated_s = timer.perf_counter() - started
    train_end = months_later(START, args.train_months).astimezone(UTC)

    # The ranker: trained (and its promotion decided) on the first months only.
    started = timer.perf_counter()
    store = ModelStore(engine)
    report = train_ranking(engine, train_end, min_decisions=50, store=store)
    train_s = timer.perf_counter() - started
    rest = [d for d in load_decisions(engine) if d.created_at > train_end]
    rules = rank_metrics(rest, rules_scores)
    model = None
    if report.info is not None:
        estimator = store.load(report.info.id).estimator
        model = rank_metrics(rest, model_scores(estimator))

    # The no-show model, the same way.
    no_show = train_no_show(engine, services.clinic(), train_end, min_examples=50, store=store)
    examples = [
        e for e in load_examples(engine, services.clinic(), until=end) if e.start > train_end
    ]
    no_show_rest: dict[str, Any] = {}
    if no_show.info is not None and examples:
        estimator = store.load(no_show.info.id).estimator
        predicted = probability(estimator, [e.features for e in examples]).tolist()
        no_show_rest = calibration([e.no_show for e in examples], predicted)
    services.close()
    marked = totals["attended"] + totals["no_show"]
    return {
        "benchmark": "ranking_eval",
        "database": url.split(":")[0],
        "seed": args.seed,
        "months": args.months,
        "train_months": args.train_months,
        "conversations": simulation.conversations,
        "offer_sets": decision_counts(engine),
        "appointments_marked": marked,
        "no_show_rate": round(totals["no_show"] / marked, 4) if marked else None,
        "ranking_model": {
            "version": report.info.version if report.info else None,
            "promoted": report.promoted,
            "reason": report.reason,
            "trained_on_sets": report.decisions,
        },
        "evaluated_sets": len(rest),
        "rules": rules.__dict__,
        "model": model.__dict__ if model else None,
        "no_show_model": {"promoted": no_show.promoted, "reason": no_show.reason},
        "no_show_eval": no_show_rest,
        "simulation_s": round(simulated_s, 1),
        "ranking_train_s": round(train_s, 2),
    }


def show(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(json.dumps(result))
    rules, model = result["rules"], result["model"]
    print(
        f"{result['database']}: {result['conversations']} simulated conversations over "
        f"{result['months']} months, trained on the first {result['train_months']}; "
        f"{result['evaluated_sets']} offer sets after that:"
    )
    print(f"  {'':6} first-offer acceptance   MRR")
    print(f"  rules  {rules['first_offer_acceptance'] * 100:20.1f}%  {rules['mrr']:.3f}")
    if model:
        print(f"  model  {model['first_offer_acceptance'] * 100:20.1f}%  {model['mrr']:.3f}")
    ranking = result["ranking_model"]
    print(f"  ranking model promoted: {ranking['promoted']} ({ranking['reason']})")
    print(
        f"  no-show model promoted at training: {result['no_show_model']['promoted']} "
        f"({result['no_show_model']['reason']})"
    )
    ns = result["no_show_eval"]
    if ns:
        bins = "  ".join(
            f"{b['predicted'] * 100:.0f}%→{b['observed'] * 100:.0f}%" for b in ns["reliability"]
        )
        print(
            f"  no-show: clinic rate {result['no_show_rate'] * 100:.1f}%; on "
            f"{ns['appointments']} later appointments ROC AUC {ns['roc_auc']:.3f}, Brier "
            f"{ns['brier']:.4f} (base rate {ns['brier_base_rate']:.4f}); reliability "
            f"(predicted→observed): {bins}"
        )
    print(
        f"reproduce: PYTHONPATH=. python benchmarks/ranking_eval.py --months {args.months} "
        f"--train-months {args.train_months} --calls-per-day {args.calls_per_day} "
        f"--patients {args.patients} --seed {args.seed}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=4)
    parser.add_argument("--train-months", type=int, default=3)
    parser.add_argument("--calls-per-day", type=int, default=14)
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", help="run on this PostgreSQL database (own schema)")
    args = parser.parse_args()
    if args.train_months >= args.months:
        parser.error("--train-months must be less than --months")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ranking_eval.db"
        if args.postgres:
            admin = make_engine(args.postgres)
            with admin.begin() as connection:
                connection.execute(text("DROP SCHEMA IF EXISTS bench_ranking CASCADE"))
                connection.execute(text("CREATE SCHEMA bench_ranking"))
            admin.dispose()
            url = f"{args.postgres}?options=-csearch_path%3Dbench_ranking"
        show(asyncio.run(simulate(url, args, Path(tmp))), args)


if __name__ == "__main__":
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    main()
