"""When confirmation steps happen: contact hours in the clinic's timezone (across a DST change),
contact days, closures, the minimum lead, retries, and how a reply is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from voice_agent.clinic.model import Clinic, Weekday
from voice_agent.confirmations.messages import Answer, confirmation_texts
from voice_agent.confirmations.planning import (
    contact_allowed,
    last_contact_time,
    next_contact_time,
    plan_steps,
    retry_time,
)
from voice_agent.settings import PROJECT_ROOT

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
NEW_YORK = ZoneInfo("America/New_York")


def with_policy(clinic: Clinic, timezone: str | None = None, **policy: object) -> Clinic:
    data = clinic.model_dump()
    data["confirmations"] = {**data["confirmations"], **policy}
    if timezone:
        data["timezone"] = timezone
    return Clinic.model_validate(data)


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)


def test_default_policy_plans_whatsapp_48h_then_a_call_24h_before(sample_clinic: Clinic) -> None:
    now = local(SAO_PAULO, 2026, 11, 23, 10, 0)
    start = local(SAO_PAULO, 2026, 11, 27, 10, 0)  # Friday
    steps = plan_steps(sample_clinic, start, now)
    assert [(s.via, s.due_at) for s in steps] == [
        ("whatsapp", local(SAO_PAULO, 2026, 11, 25, 10, 0)),
        ("call", local(SAO_PAULO, 2026, 11, 26, 10, 0)),
    ]


def test_night_steps_move_into_contact_hours(sample_clinic: Clinic) -> None:
    now = local(SAO_PAULO, 2026, 11, 23, 10, 0)
    early = plan_steps(sample_clinic, local(SAO_PAULO, 2026, 11, 27, 7, 0), now)
    # 48 h before 07:00 is 07:00: the message waits for 09:00 the same day.
    assert early[0].due_at == local(SAO_PAULO, 2026, 11, 25, 9, 0)
    late = plan_steps(sample_clinic, local(SAO_PAULO, 2026, 11, 27, 21, 30), now)
    # 21:30 is after 20:00: the next morning, still well before the appointment.
    assert late[0].due_at == local(SAO_PAULO, 2026, 11, 26, 9, 0)
    assert all(contact_allowed(s.due_at, sample_clinic) for s in early + late)


def test_sundays_and_clinic_closures_are_skipped(sample_clinic: Clinic) -> None:
    now = local(SAO_PAULO, 2026, 11, 20, 10, 0)
    # Monday 08:00: the 24 h call would be on Sunday; Monday 09:00 is past the 2 h lead limit,
    # so the call moves back to the last contact time on Saturday.
    steps = plan_steps(sample_clinic, local(SAO_PAULO, 2026, 11, 30, 8, 0), now)
    call = next(s for s in steps if s.via == "call")
    assert call.due_at == local(SAO_PAULO, 2026, 11, 28, 19, 59)
    # 24-25 December are closures in the sample clinic: nothing happens on those days.
    christmas = local(SAO_PAULO, 2026, 12, 24, 12, 0)
    assert not contact_allowed(christmas, sample_clinic)
    assert next_contact_time(christmas, sample_clinic) == local(SAO_PAULO, 2026, 12, 26, 9, 0)


def test_steps_already_past_or_too_close_are_not_planned(sample_clinic: Clinic) -> None:
    now = local(SAO_PAULO, 2026, 11, 23, 10, 0)
    assert plan_steps(sample_clinic, local(SAO_PAULO, 2026, 11, 24, 9, 0), now) == []
    steps = plan_steps(sample_clinic, local(SAO_PAULO, 2026, 11, 25, 9, 0), now)
    assert [s.via for s in steps] == ["call"]  # the 48 h message would have been due already
    # Booked at 10:00 for tomorrow 10:30: no call at 10:30 today, half an hour after booking.
    assert plan_steps(sample_clinic, local(SAO_PAULO, 2026, 11, 24, 10, 30), now) == []
    eager = with_policy(sample_clinic, quiet_after_booking_hours=0)
    assert [s.via for s in plan_steps(eager, local(SAO_PAULO, 2026, 11, 24, 10, 30), now)] == [
        "call"
    ]
    disabled = with_policy(sample_clinic, enabled=False)
    assert plan_steps(disabled, local(SAO_PAULO, 2026, 12, 1, 10, 0), now) == []


def test_contact_hours_hold_in_local_time_across_the_end_of_dst(sample_clinic: Clinic) -> None:
    clinic = with_policy(sample_clinic, "America/New_York", contact_days=list(Weekday))
    # Saturday (EDT, UTC-4): 09:00 local is 13:00 UTC.
    assert not contact_allowed(datetime(2026, 10, 31, 12, 59, tzinfo=UTC), clinic)
    assert contact_allowed(datetime(2026, 10, 31, 13, 0, tzinfo=UTC), clinic)
    # Sunday 1 November, after the clocks went back (EST, UTC-5): 09:00 local is 14:00 UTC.
    assert not contact_allowed(datetime(2026, 11, 1, 13, 30, tzinfo=UTC), clinic)
    assert contact_allowed(datetime(2026, 11, 1, 14, 0, tzinfo=UTC), clinic)
    # A Monday 08:30 appointment: the 24 h call falls at 08:30 EST on Sunday, a quiet hour
    # (it would be 09:30 with Saturday's offset); it goes to 09:00 EST.
    start = local(NEW_YORK, 2026, 11, 2, 8, 30)
    now = local(NEW_YORK, 2026, 10, 29, 12, 0)
    steps = plan_steps(clinic, start, now)
    call = next(s for s in steps if s.via == "call")
    assert call.due_at == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    assert call.due_at.astimezone(NEW_YORK).hour == 9
    whatsapp = next(s for s in steps if s.via == "whatsapp")
    assert whatsapp.due_at.astimezone(NEW_YORK).hour == 9  # Saturday 08:30 EDT → 09:00 EDT
    # The start of DST (8 March 2026): the same rule, the other way.
    assert contact_allowed(datetime(2026, 3, 8, 13, 0, tzinfo=UTC), clinic)  # 09:00 EDT
    assert not contact_allowed(datetime(2026, 3, 7, 13, 30, tzinfo=UTC), clinic)  # 08:30 EST


def test_retries_follow_the_backoff_then_stop(sample_clinic: Clinic) -> None:
    now = local(SAO_PAULO, 2026, 11, 26, 10, 0)
    start = local(SAO_PAULO, 2026, 11, 27, 10, 0)
    assert retry_time(sample_clinic, now, start, 1) == now + timedelta(minutes=30)
    assert retry_time(sample_clinic, now, start, 2) == now + timedelta(minutes=120)
    assert retry_time(sample_clinic, now, start, 3) is None  # three attempts by default
    evening = local(SAO_PAULO, 2026, 11, 26, 19, 45)
    noon = local(SAO_PAULO, 2026, 11, 27, 12, 0)
    assert retry_time(sample_clinic, evening, noon, 1) == local(SAO_PAULO, 2026, 11, 27, 9, 0)
    assert retry_time(sample_clinic, evening, start, 1) is None  # 09:00 is within the 2 h lead


def test_last_contact_time_and_next_contact_time_mirror(sample_clinic: Clinic) -> None:
    night = local(SAO_PAULO, 2026, 11, 25, 23, 0)
    assert last_contact_time(night, sample_clinic) == local(SAO_PAULO, 2026, 11, 25, 19, 59)
    assert next_contact_time(night, sample_clinic) == local(SAO_PAULO, 2026, 11, 26, 9, 0)


@pytest.mark.parametrize(
    ("language", "text", "answer"),
    [
        ("pt-BR", "1", Answer.confirm),
        ("pt-BR", " 1. ", Answer.confirm),
        ("pt-BR", "Sim!", Answer.confirm),
        ("pt-BR", "2 - não vou", Answer.cancel),
        ("pt-BR", "Não", Answer.cancel),
        ("pt-BR", "3", Answer.change),
        ("pt-BR", "quero remarcar para sexta", Answer.free_text),
        ("pt-BR", "7", Answer.unclear),
        ("pt-BR", "🙂", Answer.unclear),
        ("pt-BR", "", Answer.unclear),
        ("ru", "Да", Answer.confirm),
        ("ru", "отменить", Answer.cancel),
        ("ru", "перенести", Answer.change),
        ("en", "Yes please", Answer.confirm),
        ("en", "👍", Answer.confirm),
        ("en", "what is the address?", Answer.free_text),
    ],
)
def test_replies_are_read_in_the_patients_language(
    language: str, text: str, answer: Answer
) -> None:
    assert confirmation_texts(PROJECT_ROOT / "prompts", language).read_answer(text) == answer


def test_late_planning_sends_one_overdue_request_at_the_next_contact_time(
    sample_clinic: Clinic,
) -> None:
    booked_at = local(SAO_PAULO, 2026, 11, 10, 10, 0)  # before confirmations were switched on
    start = local(SAO_PAULO, 2026, 11, 27, 10, 0)
    # Planned at 21:00 on Wednesday: the 48 h request (Wednesday 10:00) is overdue; it goes at
    # 09:00 on Thursday, the next contact time, and the 24 h call (Thursday 10:00) stays.
    now = local(SAO_PAULO, 2026, 11, 25, 21, 0)
    steps = plan_steps(sample_clinic, start, now, booked_at=booked_at)
    assert [(s.via, s.due_at) for s in steps] == [
        ("whatsapp", local(SAO_PAULO, 2026, 11, 26, 9, 0)),
        ("call", local(SAO_PAULO, 2026, 11, 26, 10, 0)),
    ]
    # Both ideal times passed: only the latest step, once, now.
    now = local(SAO_PAULO, 2026, 11, 26, 11, 0)
    steps = plan_steps(sample_clinic, start, now, booked_at=booked_at)
    assert [(s.via, s.due_at) for s in steps] == [("call", now)]
    # A booking made just now plans nothing overdue (the patient got the booking confirmation).
    assert plan_steps(sample_clinic, start, now) == []


def test_an_overdue_request_gives_way_to_a_step_due_as_soon(sample_clinic: Clinic) -> None:
    booked_at = local(SAO_PAULO, 2026, 11, 10, 10, 0)
    start = local(SAO_PAULO, 2026, 11, 27, 8, 0)
    # Thursday 07:00, before contact hours: the overdue 48 h request would wait for 09:00, when
    # the 24 h call (ideal 08:00, moved to 09:00) is due anyway; the call alone remains.
    now = local(SAO_PAULO, 2026, 11, 26, 7, 0)
    steps = plan_steps(sample_clinic, start, now, booked_at=booked_at)
    assert [(s.via, s.due_at) for s in steps] == [("call", local(SAO_PAULO, 2026, 11, 26, 9, 0))]
