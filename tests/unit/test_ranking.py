"""Ranking: previous doctor, soonness, load, language, soft wishes, diversity, determinism."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import voice_agent.clinic as clinic_package
import voice_agent.scheduling.ranking as ranking
from voice_agent.clinic import Clinic, load_clinic_file
from voice_agent.scheduling.availability import Interval
from voice_agent.scheduling.preferences import Preferences
from voice_agent.scheduling.ranking import (
    Candidate,
    Offer,
    RankingContext,
    Reason,
    ReasonCode,
    rank_offers,
    service_for,
)

CLINIC = load_clinic_file(
    Path(clinic_package.__file__).parent / "samples" / "clinica_sao_lucas.yaml"
)
SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SP)  # a Monday
WED = date(2026, 11, 25)


def rank(
    service: str, prefs: Preferences | None = None, context: RankingContext | None = None, **kw
) -> list[Offer]:
    return rank_offers(
        CLINIC, service, prefs or Preferences(), now=NOW, busy=kw.pop("busy", {}),
        context=context, **kw,
    )  # fmt: skip


def codes(offer: Offer) -> list[str]:
    return [reason.code for reason in offer.reasons]


def test_without_context_the_earliest_slot_comes_first() -> None:
    offers = rank("cardio-consulta")
    assert len(offers) == 5
    top = offers[0]
    assert top.slot.doctor_id == "dr-carlos-lima"
    assert top.slot.start.astimezone(SP) == datetime(2026, 11, 24, 9, 0, tzinfo=SP)
    assert codes(top)[0] == ReasonCode.earliest
    assert [o.score for o in offers] == sorted((o.score for o in offers), reverse=True)


def test_previous_doctor_wins_over_an_earlier_slot() -> None:
    for key in ("cardio-consulta", "cardiologia"):
        context = RankingContext(previous_doctors={key: "dr-ana-souza"})
        offers = rank("cardio-consulta", context=context)
        assert offers[0].slot.doctor_id == "dr-ana-souza"
        assert codes(offers[0])[0] == ReasonCode.previous_doctor
        # the earlier doctor is still offered as an alternative
        assert "dr-carlos-lima" in {o.slot.doctor_id for o in offers}


def test_previous_doctor_is_looked_for_beyond_the_first_days() -> None:
    busy_ana = {
        "dr-ana-souza": [
            Interval(datetime(2026, 11, 24, tzinfo=SP), datetime(2026, 12, 3, tzinfo=SP))
        ]
    }
    context = RankingContext(previous_doctors={"cardiologia": "dr-ana-souza"})
    offers = rank("cardio-consulta", context=context, busy=busy_ana)
    assert offers[0].slot.doctor_id == "dr-ana-souza"
    assert offers[0].slot.start.astimezone(SP).date() == date(2026, 12, 4)


def test_load_balance_prefers_the_less_booked_doctor() -> None:
    prefs = Preferences(dates=[WED])  # Dr. Paulo in the morning, Dra. Juliana in the afternoon
    busy_paulo = RankingContext(doctor_load={"dr-paulo-ribeiro": 12, "dra-juliana-mendes": 2})
    busy_juliana = RankingContext(doctor_load={"dr-paulo-ribeiro": 2, "dra-juliana-mendes": 12})
    top = rank("clinico-consulta", prefs, busy_paulo)[0]
    assert top.slot.doctor_id == "dra-juliana-mendes"
    assert ReasonCode.light_load in codes(top)
    top = rank("clinico-consulta", prefs, busy_juliana)[0]
    assert top.slot.doctor_id == "dr-paulo-ribeiro"
    assert ReasonCode.light_load in codes(top)


def test_qualification_fit_prefers_the_doctor_the_service_needs() -> None:
    prefs = Preferences(dates=[WED])
    offers = rank("clinico-consulta", prefs)
    by_doctor = {o.slot.doctor_id: dict((r.code, r.weight) for r in o.reasons) for o in offers}
    juliana, paulo = by_doctor["dra-juliana-mendes"], by_doctor["dr-paulo-ribeiro"]
    assert juliana[ReasonCode.qualification_fit] > paulo.get(ReasonCode.qualification_fit, 0)
    # one doctor only: seniority cannot change the order, so it is not a reason
    alone = rank("pediatria-consulta")
    assert all(ReasonCode.qualification_fit not in codes(o) for o in alone)


def test_language_counts_only_when_it_tells_doctors_apart() -> None:
    english = rank("cardio-consulta", context=RankingContext(language="en"))
    ana = [o for o in english if o.slot.doctor_id == "dr-ana-souza"]
    carlos = [o for o in english if o.slot.doctor_id == "dr-carlos-lima"]
    assert ana and carlos
    assert all(ReasonCode.speaks_language in codes(o) for o in ana)
    assert all(ReasonCode.speaks_language not in codes(o) for o in carlos)
    portuguese = rank("cardio-consulta", context=RankingContext(language="pt-BR"))
    assert all(ReasonCode.speaks_language not in codes(o) for o in portuguese)


def test_soft_preferences_raise_but_do_not_filter() -> None:
    soft = RankingContext(soft=Preferences(periods=["afternoon"]))
    offers = rank("cardio-consulta", context=soft)
    assert offers[0].slot.start.astimezone(SP).time() >= time(12)
    assert ReasonCode.preferred_period in codes(offers[0])
    thursday = RankingContext(soft=Preferences(weekdays=["thu"]))
    offers = rank("cardio-consulta", context=thursday)
    assert offers[0].slot.start.astimezone(SP).weekday() == 3
    assert ReasonCode.preferred_day in codes(offers[0])


def test_diversity_at_most_two_per_doctor_and_day() -> None:
    offers = rank("clinico-consulta")
    per_day = Counter((o.slot.doctor_id, o.slot.start.astimezone(SP).date()) for o in offers)
    assert len(offers) == 5 and max(per_day.values()) <= 2
    assert len({o.slot.doctor_id for o in offers}) == 2


def test_diversity_gives_way_when_nothing_else_is_free() -> None:
    offers = rank("pediatria-consulta", Preferences(dates=[WED]), limit=4)
    assert len(offers) == 4
    assert {(o.slot.doctor_id, o.slot.start.astimezone(SP).date()) for o in offers} == {
        ("dra-fernanda-alves", WED)
    }


def test_reasons_explain_the_score_and_summary_reads_well() -> None:
    context = RankingContext(previous_doctors={"cardiologia": "dr-ana-souza"}, language="en")
    for offer in rank("cardio-consulta", context=context):
        assert offer.reasons
        assert offer.score == pytest.approx(sum(r.weight for r in offer.reasons), abs=1e-3)
        weights = [r.weight for r in offer.reasons]
        assert weights == sorted(weights, reverse=True)
    top = rank("cardio-consulta", context=context)[0]
    summary = top.summary(CLINIC)
    assert "Dra. Ana Souza" in summary and "seen before" in summary
    assert top.slot.start.astimezone(SP).strftime("%H:%M") in summary


def test_same_input_same_offers_whatever_the_busy_order() -> None:
    day = datetime(2026, 11, 24, tzinfo=SP)
    busy = [
        Interval(day.replace(hour=h, minute=m), day.replace(hour=h, minute=m + 20))
        for h in (9, 10, 14)
        for m in (0, 30)
    ]
    shuffled = list(busy)
    random.Random(3).shuffle(shuffled)
    context = RankingContext(doctor_load={"dr-ana-souza": 3})
    first = rank("cardio-consulta", context=context, busy={"dr-carlos-lima": busy})
    second = rank("cardio-consulta", context=context, busy={"dr-carlos-lima": shuffled})
    assert first == second
    assert first == rank("cardio-consulta", context=context, busy={"dr-carlos-lima": busy})


def test_hard_preferences_apply_to_every_offer() -> None:
    prefs = Preferences(exclude_weekdays=["tue"], periods=["afternoon"], insurance_id="unimed")
    offers = rank("cardio-consulta", prefs)
    assert offers
    for offer in offers:
        start = offer.slot.start.astimezone(SP)
        assert start.weekday() != 1 and time(12) <= start.time() < time(18)
    assert rank("cardio-consulta", Preferences(insurance_id="amil")) == []
    assert rank("cardio-consulta", Preferences(date_to=date(2026, 11, 1))) == []


def test_the_scan_stops_early(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[date] = []
    real = ranking.free_slots_by_day

    def counting(*args, **kwargs):
        for day, slots in real(*args, **kwargs):
            seen.append(day)
            yield day, slots

    monkeypatch.setattr(ranking, "free_slots_by_day", counting)
    assert rank("clinico-consulta")
    assert 3 <= len(seen) <= 7


def test_a_custom_scorer_plugs_in() -> None:
    class Latest:
        def score(
            self, candidates: Sequence[Candidate], context: RankingContext, clinic: Clinic
        ) -> list[Offer]:
            return [Offer(c.slot, c.days_out, (Reason("later", c.days_out),)) for c in candidates]

    offers = rank("cardio-consulta", scorer=Latest())
    assert offers[0].score == max(o.score for o in offers)
    assert offers[0].slot.start > rank("cardio-consulta")[0].slot.start


def test_service_for_a_specialty_is_its_consultation() -> None:
    def pick(specialty: str) -> str | None:
        service = service_for(CLINIC, specialty)
        return service.id if service else None

    assert pick("cardiologia") == "cardio-consulta"  # not the shorter ECG
    assert pick("clinica-geral") == "clinico-consulta"
    assert pick("dermatologia") == "derma-consulta"
    assert pick("ortopedia") is None


def test_unknown_service_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="unknown service"):
        rank("massage")
