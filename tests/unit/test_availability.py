"""The slot engine on the sample clinic: hours, breaks, closures, busy time, notice, DST, checks."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import voice_agent.clinic as clinic_package
from voice_agent.clinic import Clinic, load_clinic_file
from voice_agent.scheduling.availability import (
    BookingRules,
    Interval,
    ProblemCode,
    Slot,
    booking_window,
    check_insurance,
    check_slot,
    free_slots,
    free_slots_by_day,
)

SAMPLE = Path(clinic_package.__file__).parent / "samples" / "clinica_sao_lucas.yaml"
CLINIC = load_clinic_file(SAMPLE)
SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SP)  # a Monday


def at(day: date, hhmm: str, tz: ZoneInfo = SP) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), tz)


def local_starts(slots: list[Slot], tz: ZoneInfo = SP) -> list[str]:
    return [s.start.astimezone(tz).strftime("%H:%M") for s in slots]


def slots_on(day: date, service: str = "cardio-consulta", clinic: Clinic = CLINIC, **kw: Any):
    return [
        s
        for s in free_slots(clinic, service, now=kw.pop("now", NOW), busy=kw.pop("busy", {}), **kw)
        if s.start.astimezone(clinic.tz).date() == day
    ]


def variant(clinic: Clinic = CLINIC, **changes: Any) -> Clinic:
    """A copy with top-level fields replaced (a new Clinic, so cached look-ups are fresh)."""
    return Clinic.model_validate({**clinic.model_dump(), **changes})


MON = date(2026, 11, 23)  # NOW's day: today
TUE = date(2026, 11, 24)
WED = date(2026, 11, 25)
FRI = date(2026, 11, 27)


def test_first_slot_is_tomorrow_with_the_earliest_doctor() -> None:
    first = next(free_slots(CLINIC, "cardio-consulta", now=NOW, busy={}))
    assert first == Slot(
        "dr-carlos-lima",
        "cardio-consulta",
        datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 24, 12, 30, tzinfo=UTC),
        None,
    )
    assert first.start.tzinfo is UTC


def test_slots_are_chronological_and_last_the_service_duration() -> None:
    slots = list(islice(free_slots(CLINIC, "clinico-consulta", now=NOW, busy={}), 200))
    assert slots == sorted(slots, key=lambda s: (s.start, s.doctor_id))
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
    assert {s.doctor_id for s in slots} == {"dra-juliana-mendes", "dr-paulo-ribeiro"}


def test_grid_follows_slot_minutes_and_breaks_are_excluded() -> None:
    ana = [s for s in slots_on(WED) if s.doctor_id == "dr-ana-souza"]
    starts = local_starts(ana)
    # 15-minute grid, 30-minute consultation, lunch 12:00-13:30, day ends 17:00
    assert starts[:3] == ["08:00", "08:15", "08:30"]
    assert "11:30" in starts and "11:45" not in starts
    assert not any("12:00" <= s < "13:30" for s in starts)
    assert "13:30" in starts and starts[-1] == "16:30"


def test_several_blocks_a_day_and_their_hospital() -> None:
    juliana = [s for s in slots_on(TUE, "clinico-consulta") if s.doctor_id == "dra-juliana-mendes"]
    assert local_starts(juliana) == [
        *("08:00", "08:30", "09:00", "09:30", "10:00", "10:30", "11:00", "11:30"),
        *("14:00", "14:30", "15:00", "15:30", "16:00", "16:30", "17:00", "17:30", "18:00"),
        "18:30",
    ]
    friday = slots_on(FRI)
    assert friday and {s.hospital_id for s in friday} == {"hosp-santa-cecilia"}


def test_clinic_closure_excludes_christmas() -> None:
    days = {
        s.start.astimezone(SP).date()
        for s in free_slots(
            CLINIC,
            "clinico-consulta",
            now=NOW,
            busy={},
            first_day=date(2026, 12, 21),
            last_day=date(2026, 12, 28),
        )
    }
    assert date(2026, 12, 23) in days and date(2026, 12, 26) in days
    assert date(2026, 12, 24) not in days and date(2026, 12, 25) not in days


def test_doctor_vacation_excludes_only_that_doctor() -> None:
    january = list(
        free_slots(
            CLINIC,
            "cardio-consulta",
            now=NOW,
            busy={},
            first_day=date(2027, 1, 11),
            last_day=date(2027, 1, 22),
        )
    )
    assert january and {s.doctor_id for s in january} == {"dr-ana-souza"}
    after = slots_on(date(2027, 1, 23))  # a Saturday: Dr. Carlos is back
    assert after and {s.doctor_id for s in after} == {"dr-carlos-lima"}


def test_busy_intervals_unsorted_and_overlapping_are_excluded() -> None:
    busy = [
        Interval(at(TUE, "11:00"), at(TUE, "12:00")),
        Interval(at(TUE, "09:10"), at(TUE, "09:40")),
        Interval(at(TUE, "09:00"), at(TUE, "09:20")),
        # same time expressed in UTC, overlapping the one above
        Interval(
            datetime(2026, 11, 24, 14, 0, tzinfo=UTC), datetime(2026, 11, 24, 14, 5, tzinfo=UTC)
        ),
    ]
    random.Random(7).shuffle(busy)
    carlos = [s for s in slots_on(TUE, busy={"dr-carlos-lima": busy})]
    assert local_starts(carlos)[:6] == ["09:45", "10:00", "10:15", "10:30", "12:00", "13:30"]
    assert all(not (b.start < s.end and s.start < b.end) for s in carlos for b in busy)


def test_busy_time_of_one_doctor_does_not_block_another() -> None:
    whole_day = Interval(at(WED, "00:00"), at(WED, "23:59"))
    wed = slots_on(WED, busy={"dr-carlos-lima": [whole_day]})
    assert wed and {s.doctor_id for s in wed} == {"dr-ana-souza"}
    assert slots_on(WED, busy={"dr-ana-souza": [whole_day]}) == []


def test_min_notice_applies_when_booking_today_is_allowed() -> None:
    same_day = variant(booking={**CLINIC.booking.model_dump(), "start_tomorrow": False})
    today = date(2026, 11, 23)
    ana = local_starts(slots_on(today, clinic=same_day))
    # 10:00 + 120 min notice = 12:00, lunch until 13:30
    assert ana[0] == "13:30"
    shorter = local_starts(slots_on(today, clinic=same_day, min_notice=timedelta(minutes=30)))
    assert shorter[0] == "10:30"


def test_window_defaults_and_is_clamped_to_the_policy() -> None:
    first, last = booking_window(CLINIC, NOW)
    assert (first, last) == (TUE, date(2027, 2, 21))
    days = [
        day
        for day, _ in free_slots_by_day(
            CLINIC, "cardio-consulta", now=NOW, busy={}, first_day=date(2026, 1, 1)
        )
    ]
    assert days[0] == TUE and days[-1] <= last
    assert list(free_slots(CLINIC, "cardio-consulta", now=NOW, busy={}, last_day=NOW.date())) == []


def test_doctor_filter_and_qualification() -> None:
    only_ana = list(
        islice(free_slots(CLINIC, "ecg", now=NOW, busy={}, doctor_ids=["dr-ana-souza"]), 50)
    )
    assert only_ana and {s.doctor_id for s in only_ana} == {"dr-ana-souza"}
    echo = {
        s.doctor_id for s in islice(free_slots(CLINIC, "ecocardiograma", now=NOW, busy={}), 100)
    }
    assert echo == {"dr-ana-souza"}
    with pytest.raises(ValueError, match="unknown service"):
        free_slots(CLINIC, "massage", now=NOW, busy={})
    with pytest.raises(ValueError, match="timezone-aware"):
        free_slots(CLINIC, "ecg", now=datetime(2026, 11, 23, 10), busy={})


def test_under_qualified_doctor_is_never_offered() -> None:
    data = CLINIC.model_dump()
    for doctor in data["doctors"]:
        if doctor["id"] == "dr-carlos-lima":
            doctor["services"] = [*doctor["services"], "ecocardiograma"]
    clinic = Clinic.model_validate(data)
    echo = {
        s.doctor_id for s in islice(free_slots(clinic, "ecocardiograma", now=NOW, busy={}), 100)
    }
    assert echo == {"dr-ana-souza"}
    problem = check_slot(
        clinic, doctor_id="dr-carlos-lima", service_id="ecocardiograma",
        start=at(TUE, "09:00"), now=NOW, busy={},
    )  # fmt: skip
    assert problem is not None and problem.code == ProblemCode.service_not_offered


# check_slot: one case per reason code

CHECKS = [
    ("unknown_service", "dr-carlos-lima", "massage", at(TUE, "09:00")),
    ("unknown_doctor", "dr-house", "cardio-consulta", at(TUE, "09:00")),
    ("service_not_offered", "dr-carlos-lima", "ecocardiograma", at(TUE, "09:00")),
    ("in_past", "dr-ana-souza", "cardio-consulta", at(date(2026, 11, 23), "08:00")),
    ("too_short_notice", "dr-ana-souza", "cardio-consulta", at(date(2026, 11, 23), "14:00")),
    ("beyond_horizon", "dr-ana-souza", "cardio-consulta", at(date(2027, 3, 1), "09:00")),
    ("closed", "dr-carlos-lima", "cardio-consulta", at(date(2026, 12, 24), "09:00")),
    ("closed", "dr-carlos-lima", "cardio-consulta", at(date(2027, 1, 12), "09:00")),
    ("outside_hours", "dr-carlos-lima", "cardio-consulta", at(TUE, "18:00")),
    ("outside_hours", "dr-carlos-lima", "cardio-consulta", at(TUE, "17:45")),
    ("outside_hours", "dr-carlos-lima", "cardio-consulta", at(WED, "10:00")),
    ("outside_hours", "dr-carlos-lima", "cardio-consulta", at(TUE, "12:15")),
    ("misaligned", "dr-carlos-lima", "cardio-consulta", at(TUE, "09:05")),
    ("misaligned", "dra-juliana-mendes", "clinico-consulta", at(TUE, "08:15")),
    ("busy", "dr-carlos-lima", "cardio-consulta", at(TUE, "10:15")),
]


@pytest.mark.parametrize(("code", "doctor", "service", "start"), CHECKS)
def test_check_slot_says_why(code: str, doctor: str, service: str, start: datetime) -> None:
    busy = {"dr-carlos-lima": [Interval(at(TUE, "10:30"), at(TUE, "11:00"))]}
    problem = check_slot(
        CLINIC, doctor_id=doctor, service_id=service, start=start, now=NOW, busy=busy
    )
    assert problem is not None
    assert problem.code == code
    assert problem.message


def test_check_slot_details() -> None:
    def message(doctor: str, start: datetime) -> str:
        problem = check_slot(
            CLINIC, doctor_id=doctor, service_id="cardio-consulta", start=start, now=NOW, busy={}
        )
        assert problem is not None
        return problem.message

    assert "Natal" in message("dr-carlos-lima", at(date(2026, 12, 24), "09:00"))
    assert "Férias" in message("dr-carlos-lima", at(date(2027, 1, 12), "09:00"))
    assert "12:30" in message("dr-carlos-lima", at(TUE, "12:15"))
    assert "15 minutes" in message("dr-carlos-lima", at(TUE, "09:05"))


def test_check_slot_accepts_a_free_slot_and_the_notice_boundary() -> None:
    ok = check_slot(
        CLINIC, doctor_id="dr-carlos-lima", service_id="cardio-consulta",
        start=at(TUE, "10:00"), now=NOW, busy={},
    )  # fmt: skip
    assert ok is None
    same_day = variant(booking={**CLINIC.booking.model_dump(), "start_tomorrow": False})
    args = {"doctor_id": "dr-ana-souza", "service_id": "cardio-consulta", "now": NOW, "busy": {}}
    assert check_slot(same_day, start=at(NOW.date(), "13:30"), **args) is None
    late = check_slot(same_day, start=at(NOW.date(), "11:00"), **args)
    assert late is not None and late.code == ProblemCode.too_short_notice
    assert "2 hours" in late.message


@pytest.mark.parametrize(
    ("rules", "now"),
    [
        (BookingRules.policy, NOW),
        (BookingRules.desk, NOW),  # today from 10:00 on, the 10:00 slot starting now included
        (BookingRules.desk, NOW + timedelta(minutes=7)),  # between two grid times
        (BookingRules.desk, at(MON, "12:40")),  # in Dra. Ana's lunch
        (BookingRules.desk, at(MON, "16:59")),  # her last start is gone
    ],
)
def test_check_slot_agrees_with_free_slots(rules: BookingRules, now: datetime) -> None:
    busy = {
        "dr-ana-souza": [
            Interval(at(WED, "09:10"), at(WED, "10:00")),
            Interval(at(MON, "14:00"), at(MON, "14:20")),
        ],
        "dr-carlos-lima": [Interval(at(TUE, "15:00"), at(TUE, "16:20"))],
    }
    offered = {
        (s.doctor_id, s.start)
        for s in free_slots(
            CLINIC, "cardio-consulta", now=now, busy=busy, last_day=date(2026, 11, 28), rules=rules
        )
    }
    checked = 0
    for day in (MON, TUE, WED, FRI):
        for doctor in ("dr-ana-souza", "dr-carlos-lima"):
            for minute in range(6 * 60, 20 * 60, 5):
                start = datetime.combine(day, time(minute // 60, minute % 60), SP)
                problem = check_slot(
                    CLINIC, doctor_id=doctor, service_id="cardio-consulta",
                    start=start, now=now, busy=busy, rules=rules,
                )  # fmt: skip
                assert (problem is None) == ((doctor, start.astimezone(UTC)) in offered), start
                checked += 1
    assert checked > 1000
    today = {start.astimezone(SP).date() for _, start in offered} & {MON}
    assert today == (set() if rules is BookingRules.policy or now.hour >= 16 else {MON})


# The front desk's rules: from now on, today included, no notice; everything else as the policy's


def test_desk_window_starts_today_with_the_same_horizon() -> None:
    policy_first, policy_last = booking_window(CLINIC, NOW)
    assert booking_window(CLINIC, NOW, BookingRules.desk) == (MON, policy_last)
    assert policy_first == TUE
    by_day = free_slots_by_day(CLINIC, "ecg", now=NOW, busy={}, rules=BookingRules.desk)
    days = [day for day, _ in by_day]
    assert days[0] == MON and days[-1] <= policy_last


def test_desk_lists_today_from_now_with_no_notice() -> None:
    assert slots_on(MON) == []  # the clinic's policy: from tomorrow
    ana = local_starts(slots_on(MON, rules=BookingRules.desk))
    assert ana[:3] == ["10:00", "10:15", "10:30"]  # 10:00 starts now: still bookable
    assert "11:30" in ana and "12:00" not in ana and "13:30" in ana  # lunch stays out
    later = local_starts(slots_on(MON, now=NOW + timedelta(seconds=1), rules=BookingRules.desk))
    assert later[0] == "10:15"  # a time already started is never listed
    busy = {"dr-ana-souza": [Interval(at(MON, "10:00"), at(MON, "11:00"))]}
    assert local_starts(slots_on(MON, busy=busy, rules=BookingRules.desk))[0] == "11:00"
    # An explicit notice still applies under the desk's rules (a caller's own choice).
    noticed = slots_on(MON, min_notice=timedelta(minutes=30), rules=BookingRules.desk)
    assert local_starts(noticed)[0] == "10:30"


DESK_CHECKS = [
    ("in_past", "dr-ana-souza", at(MON, "09:45")),
    ("in_past", "dr-ana-souza", at(MON, "08:00")),
    ("beyond_horizon", "dr-ana-souza", at(date(2027, 3, 1), "09:00")),
    ("closed", "dr-carlos-lima", at(date(2026, 12, 24), "09:00")),
    ("closed", "dr-carlos-lima", at(date(2027, 1, 12), "09:00")),
    ("outside_hours", "dr-ana-souza", at(MON, "12:15")),
    ("outside_hours", "dr-carlos-lima", at(MON, "14:00")),
    ("misaligned", "dr-ana-souza", at(MON, "14:05")),
    ("busy", "dr-ana-souza", at(MON, "15:00")),
]


@pytest.mark.parametrize(("code", "doctor", "start"), DESK_CHECKS)
def test_desk_rules_keep_every_other_check(code: str, doctor: str, start: datetime) -> None:
    busy = {"dr-ana-souza": [Interval(at(MON, "15:00"), at(MON, "15:30"))]}
    problem = check_slot(
        CLINIC, doctor_id=doctor, service_id="cardio-consulta", start=start, now=NOW, busy=busy,
        rules=BookingRules.desk,
    )  # fmt: skip
    assert problem is not None and problem.code == code and problem.message


def test_desk_books_today_where_the_policy_refuses() -> None:
    args: dict[str, Any] = {
        "doctor_id": "dr-ana-souza", "service_id": "cardio-consulta", "now": NOW, "busy": {}
    }  # fmt: skip
    for hhmm in ("10:00", "10:15", "16:30"):
        assert check_slot(CLINIC, start=at(MON, hhmm), rules=BookingRules.desk, **args) is None
        refused = check_slot(CLINIC, start=at(MON, hhmm), **args)
        assert refused is not None and refused.code == ProblemCode.too_short_notice
    # A clinic that books today keeps its notice for patients; the desk has none.
    same_day = variant(booking={**CLINIC.booking.model_dump(), "start_tomorrow": False})
    soon = check_slot(same_day, start=at(MON, "10:30"), **args)
    assert soon is not None and soon.code == ProblemCode.too_short_notice
    assert check_slot(same_day, start=at(MON, "10:30"), rules=BookingRules.desk, **args) is None


def test_insurance_is_checked_separately() -> None:
    assert check_insurance(CLINIC, "sulamerica", "dr-ana-souza", "cardio-consulta") is None
    refused = check_insurance(CLINIC, "sulamerica", "dr-carlos-lima", "cardio-consulta")
    assert refused is not None and refused.code == ProblemCode.insurance_not_accepted
    amil = check_insurance(CLINIC, "amil", "dr-ana-souza", "cardio-consulta")
    assert amil is not None and amil.code == "insurance_not_accepted"


# Daylight saving time

NIGHT_DOCTOR = {
    "id": "dr-night",
    "name": "Dr. Night",
    "specialties": ["clinica-geral"],
    "services": ["clinico-consulta"],
    "qualification": 3,
    "slot_minutes": 30,
    "working_hours": {"sun": [{"start": "00:00", "end": "06:00"}]},
}


def dst_clinic(timezone: str) -> Clinic:
    data = CLINIC.model_dump()
    data["doctors"] = [*data["doctors"], NIGHT_DOCTOR]
    return Clinic.model_validate({**data, "timezone": timezone})


def night(clinic: Clinic, day: date, now: datetime) -> list[Slot]:
    return [
        s
        for s in free_slots(
            clinic, "clinico-consulta", now=now, busy={}, first_day=day, last_day=day,
            doctor_ids=["dr-night"],
        )
    ]  # fmt: skip


def test_spring_forward_skips_the_missing_hour_new_york() -> None:
    ny = dst_clinic("America/New_York")
    tz = ZoneInfo("America/New_York")
    day = date(2026, 3, 8)  # 02:00 -> 03:00
    slots = night(ny, day, datetime(2026, 3, 1, 12, tzinfo=tz))
    assert local_starts(slots, tz) == [
        *("00:00", "00:30", "01:00"),  # 01:30 would end at 02:00, which does not exist
        *("03:00", "03:30", "04:00", "04:30", "05:00", "05:30"),
    ]
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
    assert slots[3].start == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert slots[0].start == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST


def test_fall_back_does_not_double_count_the_repeated_hour_new_york() -> None:
    ny = dst_clinic("America/New_York")
    tz = ZoneInfo("America/New_York")
    day = date(2026, 11, 1)  # 02:00 EDT -> 01:00 EST
    slots = night(ny, day, datetime(2026, 10, 20, 12, tzinfo=tz))
    assert local_starts(slots, tz) == [
        *("00:00", "00:30", "01:00"),  # 01:30 EDT to 02:00 EST would last 90 minutes
        *("02:00", "02:30", "03:00", "03:30", "04:00", "04:30", "05:00", "05:30"),
    ]
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
    assert len({s.start for s in slots}) == len(slots)
    second_one_thirty = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST, fold=1
    problem = check_slot(
        ny, doctor_id="dr-night", service_id="clinico-consulta", start=second_one_thirty,
        now=datetime(2026, 10, 20, 12, tzinfo=tz), busy={},
    )  # fmt: skip
    assert problem is not None and problem.code == ProblemCode.outside_hours


def test_lisbon_office_hours_keep_their_wall_clock_across_both_changes() -> None:
    lisbon = dst_clinic("Europe/Lisbon")
    tz = ZoneInfo("Europe/Lisbon")
    now = datetime(2027, 3, 20, 12, tzinfo=tz)
    before = slots_on(date(2027, 3, 26) - timedelta(days=1), clinic=lisbon, now=now)  # Thu 25
    after = slots_on(date(2027, 3, 29), clinic=lisbon, now=now)  # Mon after 28 Mar change
    assert before[0].start == datetime(2027, 3, 25, 9, 0, tzinfo=UTC)  # 09:00 WET
    assert after[0].start == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)  # 08:00 WEST
    spring = night(lisbon, date(2027, 3, 28), now)  # 01:00 -> 02:00
    # 00:30 would end at 01:00, which does not exist; 01:00-01:59 do not exist either
    assert local_starts(spring, tz) == [
        *("00:00", "02:00", "02:30", "03:00", "03:30", "04:00", "04:30", "05:00", "05:30"),
    ]
    autumn = night(lisbon, date(2026, 10, 25), datetime(2026, 10, 1, 12, tzinfo=tz))
    assert all(s.end - s.start == timedelta(minutes=30) for s in autumn)
    assert "01:30" not in local_starts(autumn, tz) and "01:00" in local_starts(autumn, tz)
    spring_gap = check_slot(
        lisbon, doctor_id="dr-night", service_id="clinico-consulta",
        start=datetime(2027, 3, 28, 0, 30, tzinfo=UTC), now=now, busy={},
    )  # fmt: skip
    assert spring_gap is not None and spring_gap.code == ProblemCode.outside_hours
