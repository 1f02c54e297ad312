"""Preferences: validation, the narrowed window and doctors, and the hard filters on slots."""

from __future__ import annotations

from datetime import date, datetime, time
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

import voice_agent.clinic as clinic_package
from voice_agent.clinic import load_clinic_file
from voice_agent.clinic.model import Weekday
from voice_agent.scheduling.availability import Slot, free_slots
from voice_agent.scheduling.preferences import (
    Preferences,
    candidate_doctors,
    day_filter,
    matches,
    window,
)

CLINIC = load_clinic_file(
    Path(clinic_package.__file__).parent / "samples" / "clinica_sao_lucas.yaml"
)
SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SP)  # a Monday


def found(service: str, prefs: Preferences, count: int = 300) -> list[Slot]:
    """What the engine would offer: narrowed first, then filtered slot by slot."""
    first, last = window(prefs, CLINIC, NOW)
    doctors = [d.id for d in candidate_doctors(prefs, CLINIC, service)]
    slots = free_slots(
        CLINIC, service, now=NOW, busy={}, first_day=first, last_day=last,
        doctor_ids=doctors, days=day_filter(prefs),
    )  # fmt: skip
    return list(islice((s for s in slots if matches(prefs, s, CLINIC)), count))


def local(slot: Slot) -> datetime:
    return slot.start.astimezone(SP)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"date_from": date(2026, 12, 5), "date_to": date(2026, 12, 1)}, "before date_from"),
        ({"earliest": time(15), "latest": time(9)}, "must be after earliest"),
        ({"earliest": time(15), "latest": time(15)}, "must be after earliest"),
        ({"weekdays": ["mon"], "exclude_weekdays": ["mon", "tue"]}, "also excluded"),
        ({"dates": [date(2026, 11, 30)], "exclude_weekdays": ["mon"]}, "none of the dates"),
        ({"earliest": "15:00Z"}, "without a timezone"),
        ({"when": "soon"}, "Extra inputs"),
    ],
)
def test_contradictions_are_refused_with_a_clear_message(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Preferences.model_validate(fields)


def test_schema_fields_are_documented_for_the_model() -> None:
    schema = Preferences.model_json_schema()
    assert set(schema["properties"]) >= {"dates", "periods", "earliest", "latest", "doctor_id"}
    assert all(field.get("description") for field in schema["properties"].values())


def test_problems_name_unknown_references() -> None:
    prefs = Preferences(periods=["night"], doctor_id="dr-house", specialty="magic")
    problems = prefs.problems(CLINIC)
    assert len(problems) == 3
    assert "night" in problems[0] and "afternoon" in problems[0]
    assert Preferences(periods=["morning"], insurance_id="unimed").problems(CLINIC) == []


def test_window_narrows_the_scan() -> None:
    assert window(Preferences(), CLINIC, NOW) == (date(2026, 11, 24), date(2027, 2, 21))
    ranged = Preferences(date_from=date(2026, 12, 1), date_to=date(2026, 12, 4))
    assert window(ranged, CLINIC, NOW) == (date(2026, 12, 1), date(2026, 12, 4))
    picked = Preferences(dates=[date(2026, 12, 9), date(2026, 12, 2)])
    assert window(picked, CLINIC, NOW) == (date(2026, 12, 2), date(2026, 12, 9))
    tuesdays = Preferences(weekdays=[Weekday.tue], date_from=date(2026, 11, 25))
    assert window(tuesdays, CLINIC, NOW) == (date(2026, 12, 1), date(2027, 2, 16))
    past = Preferences(date_to=date(2026, 11, 20))
    first, last = window(past, CLINIC, NOW)
    assert last < first


def test_not_on_mondays() -> None:
    slots = found("clinico-consulta", Preferences(exclude_weekdays=[Weekday.mon]))
    assert slots and all(local(s).weekday() != 0 for s in slots)
    assert {local(s).weekday() for s in slots} >= {1, 2, 3, 4, 5}


def test_afternoons_only() -> None:
    slots = found("clinico-consulta", Preferences(periods=["afternoon"]))
    assert slots and all(time(12) <= local(s).time() < time(18) for s in slots)


def test_after_three_and_done_by_five() -> None:
    slots = found("cardio-consulta", Preferences(earliest=time(15), latest=time(17)))
    assert slots
    assert all(local(s).time() >= time(15) for s in slots)
    assert all(s.end.astimezone(SP).time() <= time(17) for s in slots)
    assert time(16, 30) in {local(s).time() for s in slots}


def test_a_date_range_and_excluded_dates() -> None:
    prefs = Preferences(
        date_from=date(2026, 12, 1), date_to=date(2026, 12, 4), exclude_dates=[date(2026, 12, 2)]
    )
    days = {local(s).date() for s in found("clinico-consulta", prefs)}
    assert days == {date(2026, 12, 1), date(2026, 12, 3), date(2026, 12, 4)}


def test_specific_dates_and_weekdays() -> None:
    prefs = Preferences(dates=[date(2026, 12, 1), date(2026, 12, 3)], weekdays=[Weekday.thu])
    days = {local(s).date() for s in found("clinico-consulta", prefs)}
    assert days == {date(2026, 12, 3)}


def test_a_specific_doctor_or_specialty() -> None:
    prefs = Preferences(doctor_id="dr-paulo-ribeiro")
    assert {s.doctor_id for s in found("clinico-consulta", prefs)} == {"dr-paulo-ribeiro"}
    assert candidate_doctors(Preferences(specialty="pediatria"), CLINIC, "clinico-consulta") == []
    assert candidate_doctors(Preferences(doctor_id="dr-ana-souza"), CLINIC, "checkup") == []


def test_insurance_filters_doctors() -> None:
    def doctors(insurance: str, service: str) -> set[str]:
        prefs = Preferences(insurance_id=insurance)
        return {d.id for d in candidate_doctors(prefs, CLINIC, service)}

    assert doctors("unimed", "cardio-consulta") == {"dr-ana-souza", "dr-carlos-lima"}
    assert doctors("sulamerica", "cardio-consulta") == {"dr-ana-souza"}  # plan limits doctors
    assert doctors("amil", "cardio-consulta") == set()  # plan limits services
    assert doctors("amil", "clinico-consulta") == {"dra-juliana-mendes", "dr-paulo-ribeiro"}
    slots = found("cardio-consulta", Preferences(insurance_id="sulamerica"))
    assert slots and {s.doctor_id for s in slots} == {"dr-ana-souza"}


def test_matches_checks_each_hard_filter() -> None:
    slot = next(free_slots(CLINIC, "cardio-consulta", now=NOW, busy={}))  # Carlos, Tue 09:00
    assert matches(Preferences(), slot, CLINIC)
    assert matches(Preferences(weekdays=[Weekday.tue], periods=["morning"]), slot, CLINIC)
    assert not matches(Preferences(exclude_weekdays=[Weekday.tue]), slot, CLINIC)
    assert not matches(Preferences(periods=["afternoon", "evening"]), slot, CLINIC)
    assert not matches(Preferences(earliest=time(9, 15)), slot, CLINIC)
    assert not matches(Preferences(latest=time(9, 15)), slot, CLINIC)
    assert matches(Preferences(latest=time(9, 30)), slot, CLINIC)
    assert not matches(Preferences(doctor_id="dr-ana-souza"), slot, CLINIC)
    assert not matches(Preferences(insurance_id="sulamerica"), slot, CLINIC)
    assert not matches(Preferences(dates=[date(2026, 11, 25)]), slot, CLINIC)
    assert not matches(Preferences(periods=["night"]), slot, CLINIC)


def test_a_weekday_is_numbered_like_date_weekday_and_stays_a_string() -> None:
    """``Weekday.number`` was ``index``, a property that hid ``str.index`` on every weekday."""
    week = [date(2026, 11, 23 + i) for i in range(7)]  # Monday 23 to Sunday 29
    assert [Weekday.of(day).number for day in week] == [day.weekday() for day in week]
    assert Weekday.wed.index("d") == 2  # the str method answers again
