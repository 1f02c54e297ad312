"""The to-do queue fed at the source: a hand-over, a callback, an unanswered question, a red flag
and a dead letter each become one work item in the transaction that caused them; items are taken,
resolved with a note and audited; a dead letter is retried and comes back if it dies again.
On SQLite and PostgreSQL, through the text channel (``/api/chat``) and the outbox as they run."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from voice_agent.app import create_app
from voice_agent.console.accounts import StaffAccounts, password_hasher
from voice_agent.conversation.state import ConversationStore
from voice_agent.integrations.outbox import Delivered, OutboxItem, PermanentFailure
from voice_agent.services import Services
from voice_agent.store.conversation_tables import conversation_id_of
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow
from voice_agent.store.staff_tables import StaffRole
from voice_agent.store.tables import InteractionKind
from voice_agent.store.worklist_tables import ConversationTurn, WorkItem, WorkStatus
from voice_agent.worklist.service import WorkError

LOCAL = ("127.0.0.1", 50000)
PHONE = "+5511987654401"


ANA, BIA = 1, 2
"""The staff accounts the ``staff`` fixture makes (the first two rows)."""


def add_staff(services: Services) -> None:
    accounts = StaffAccounts(
        services.engine, services.clock, password_hasher(services.settings.staff_password_profile)
    )
    for name in ("ana", "bia"):
        accounts.add(f"{name}@clinic.test", "a long enough password", StaffRole.receptionist)


@pytest.fixture(autouse=True)
def staff(any_services: Services) -> None:
    add_staff(any_services)


@pytest.fixture
def client(any_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(any_services.settings, any_services), client=LOCAL) as test:
        yield test


def _say(client: TestClient, session: str, text: str, phone: str | None = PHONE) -> dict:
    body = {"session_id": session, "text": text} | ({"phone": phone} if phone else {})
    response = client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_hand_over_becomes_one_item_with_who_what_and_when(
    client: TestClient, any_services: Services
) -> None:
    asyncio.run(any_services.patients.find_or_create(PHONE, "pt-BR"))
    reply = _say(client, "w-1", "quero falar com uma atendente")
    assert reply["handoff"] is True
    _say(client, "w-1", "por favor, é urgente falar com alguém da equipe")  # asked again
    [item] = any_services.worklist.items()
    assert (item.kind, item.status, item.channel) == ("handover", "open", "web")
    assert item.phone == PHONE and item.language == "pt-BR"
    assert item.asked == "quero falar com uma atendente"
    assert item.created_at == any_services.clock.now()
    # One item for the conversation, whatever the number of times the patient asks.
    assert [e.action for e in any_services.worklist.get(item.id).events][:1] == ["created"]

    taken = any_services.worklist.take(item.id, ANA)
    assert (taken.status, taken.taken_by) == ("taken", ANA)
    with pytest.raises(WorkError) as refused:
        any_services.worklist.take(item.id, BIA)
    assert refused.value.code == "taken"
    with pytest.raises(WorkError) as empty:
        any_services.worklist.resolve(item.id, 1, "   ")
    assert empty.value.code == "note_required"
    done = any_services.worklist.resolve(item.id, 1, "Liguei, remarcado para sexta.")
    assert (done.status, done.resolved_by, done.resolution) == (
        "resolved",
        ANA,
        "Liguei, remarcado para sexta.",
    )
    trail = [(e.action, e.actor_id) for e in done.events]
    assert trail[0] == ("created", None)
    assert trail[-2:] == [("taken", ANA), ("resolved", ANA)]
    assert any_services.worklist.items() == []
    # A new request in the same conversation after it was resolved is a new item.
    _say(client, "w-1", "quero falar com uma atendente de novo")
    [again] = any_services.worklist.items()
    assert again.id != item.id


def test_an_unanswered_question_then_yes_is_one_item_and_the_timeline_is_kept(
    client: TestClient, any_services: Services
) -> None:
    _say(client, "w-2", "vocês têm estacionamento?", phone="+5511987654402")
    [question] = any_services.worklist.items()
    assert question.kind == "question" and question.asked == "vocês têm estacionamento?"
    _say(client, "w-2", "sim, por favor", phone="+5511987654402")
    [item] = any_services.worklist.items()
    assert item.id == question.id and item.kind == "handover"  # the stronger need wins
    assert [e.action for e in any_services.worklist.get(item.id).events] == [
        "created",
        "asked_again",
    ]
    with transaction(any_services.engine) as session:
        turns = session.execute(
            select(ConversationTurn)
            .where(ConversationTurn.conversation_id == item.conversation_id)
            .order_by(ConversationTurn.seq)
        ).scalars()
        kinds = [(t.kind, t.content) for t in turns]
    assert kinds[0] == ("patient", "vocês têm estacionamento?")
    assert kinds[1][0] == "receptionist" and "não tenho essa informação" in kinds[1][1]
    assert kinds[2] == ("patient", "sim, por favor")


def test_a_red_flag_is_an_emergency_item(client: TestClient, any_services: Services) -> None:
    reply = _say(client, "w-3", "meu pai está com dor no peito agora", phone="+5511987654403")
    assert reply["emergency"]
    [item] = any_services.worklist.items()
    assert item.kind == "emergency" and item.details["category"]
    assert item.phone == "+5511987654403"  # learnt from the conversation after the turn


def test_an_item_opened_outside_a_turn_gets_the_contact_of_the_next_turn(
    client: TestClient, any_services: Services
) -> None:
    """A need recorded for the conversation by another writer (no phone known then) is filled
    by the conversation's next turn: the turn reads that it has open items with its state."""
    store = ConversationStore(any_services.engine)
    conversation = conversation_id_of(store.key("web", "w-7"))
    asyncio.run(
        any_services.interactions.record(
            InteractionKind.transfer,
            channel="web",
            details={"conversation": conversation, "reason": "asked for a person"},
        )
    )
    [opened] = any_services.worklist.items()
    assert opened.conversation_id == conversation
    _say(client, "w-7", "bom dia", phone="+5511987654407")
    with transaction(any_services.engine) as session:
        row = session.get(WorkItem, opened.id)
        assert row is not None and row.phone == "+5511987654407" and row.language == "pt-BR"


def test_a_conversation_without_items_does_not_look_for_them(
    services: Services, db_kind: str
) -> None:
    """The to-do contact fill runs only where there is something to fill: a conversation with
    no open items and no need in the turn asks about items once, with its state. Seen by
    SQLite's own statement trace (the turn's statements run on the driver, store.prepared)."""
    if db_kind != "sqlite":
        pytest.skip("SQLite's statement trace; the same code runs on PostgreSQL")
    statements: list[str] = []
    services.engine.dispose()  # connections made from here on trace their statements

    def trace(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    event.listen(services.engine, "connect", trace)
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:
        _say(client, "w-8", "bom dia", phone="+5511987654408")
        _say(client, "w-8", "qual o horário de vocês?", phone="+5511987654408")
        alone = [s for s in statements if "work_item.conversation_id" in s]
        statements.clear()
        _say(client, "w-8", "quero falar com uma atendente", phone="+5511987654408")
        opened = [s for s in statements if "work_item.conversation_id" in s]
    # Asked once per turn, with the state, and nowhere else.
    assert len(alone) == 2 and all("EXISTS" in s.upper() for s in alone), alone
    [item] = services.worklist.items()
    # The turn that opened it filled it.
    assert item.kind == "handover" and any("EXISTS" not in s.upper() for s in opened)


class Failing:
    kind = "patient_message"
    batch_size = 1

    def __init__(self) -> None:
        self.fail = True

    async def deliver(self, items: list[OutboxItem]) -> list[Delivered | BaseException]:
        if self.fail:
            return [PermanentFailure("63016 outside the window") for _ in items]
        return [Delivered(external_id="SM1") for _ in items]


async def test_a_dead_letter_is_retried_and_comes_back_if_it_dies_again(
    any_services: Services,
) -> None:
    outbox = any_services.outbox
    handler = Failing()
    outbox.register(handler)
    assert outbox.enqueue("patient_message", "msg:1", {"event": "booked"})
    await outbox.drain()
    [item] = any_services.worklist.items()
    assert item.kind == "dead_letter" and item.retryable
    assert item.details["outbox_kind"] == "patient_message"
    assert "63016" in item.details["error"]

    retried = any_services.worklist.retry(item.id, ANA)
    assert retried.status == "resolved" and retried.outbox_status == "pending"
    with pytest.raises(WorkError):
        any_services.worklist.retry(item.id, ANA)  # not a dead letter any more
    await outbox.drain()  # dies again: the same item is back, with its history
    [back] = any_services.worklist.items()
    assert back.id == item.id and back.status == "open"
    assert [e.action for e in any_services.worklist.get(item.id).events] == [
        "created",
        "retried",
        "resolved",
        "reopened",
    ]
    handler.fail = False
    any_services.worklist.retry(item.id, ANA)
    await outbox.drain()
    with transaction(any_services.engine) as session:
        row = session.execute(select(OutboxRow).where(OutboxRow.key == "msg:1")).scalar_one()
        stored = session.get(WorkItem, item.id)
        assert row.status == "done" and stored is not None
        assert stored.status == WorkStatus.resolved and stored.open_key is None


def test_items_hold_no_patient_data_in_clear(client: TestClient, any_services: Services) -> None:
    _say(client, "w-4", "quero falar com uma atendente sobre meu exame", phone="+5511987654404")
    with any_services.engine.connect() as connection:
        raw = (
            connection.exec_driver_sql("SELECT phone, summary, details FROM work_item").all()
            + connection.exec_driver_sql("SELECT content FROM conversation_turn").all()
        )
    dump = json.dumps([list(map(str, row)) for row in raw])
    assert "987654404" not in dump and "exame" not in dump


def test_a_patients_erasure_clears_their_items_and_timeline(
    client: TestClient, any_services: Services
) -> None:
    from voice_agent.privacy.subject import erase_subject, export_subject

    phone = "+5511987654405"
    _say(client, "w-5", "quero falar com uma atendente sobre meu exame", phone=phone)
    [item] = any_services.worklist.items()
    any_services.worklist.resolve(item.id, 1, "Liguei para a paciente.")
    now = any_services.clock.now()
    exported = export_subject(any_services.engine, phone, now)
    assert exported["staff_requests"][0]["summary"].startswith("quero falar")
    assert exported["conversation_turns"][0]["content"].startswith("quero falar")
    removed = erase_subject(any_services.engine, any_services.interactions, phone, now)
    assert removed["staff_requests_cleared"] == 1 and removed["conversation_turns"] == 3
    cleared = any_services.worklist.get(item.id)
    assert cleared is not None and cleared.kind == "handover" and cleared.status == "resolved"
    assert cleared.phone is None and cleared.resolution is None
    assert all(event.note is None for event in cleared.events)


async def test_a_failing_delivery_is_shown_before_it_dies(any_services: Services) -> None:
    class Flaky(Failing):
        async def deliver(self, items: list[OutboxItem]) -> list[Delivered | BaseException]:
            return [ConnectionError("WhatsApp down") for _ in items]

    any_services.outbox.register(Flaky())
    assert any_services.outbox.enqueue("patient_message", "msg:2", {"event": "booked"})
    await any_services.outbox.deliver_due()
    [failing] = any_services.worklist.failing()
    assert (failing.kind, failing.attempts) == ("patient_message", 1)
    assert "WhatsApp down" in (failing.error or "")
    assert any_services.worklist.items() == []  # not an item until it is a dead letter


def test_retention_strips_old_resolved_items_and_timelines(
    client: TestClient, any_services: Services
) -> None:
    from datetime import timedelta

    from voice_agent.privacy.retention import purge

    _say(client, "w-6", "quero falar com uma atendente", phone="+5511987654406")
    [item] = any_services.worklist.items()
    any_services.worklist.resolve(item.id, ANA, "Liguei para o paciente.")
    policy = any_services.clinic().retention
    later = any_services.clock.now() + timedelta(days=policy.transcripts_days + 1)
    report = purge(any_services.engine, policy, later)
    assert report.conversation_turns == 2  # what was written and answered; the hand-over mark stays
    assert report.work_items == 0  # resolved items keep their words for interaction_details_days
    much_later = any_services.clock.now() + timedelta(days=policy.interaction_details_days + 1)
    report = purge(any_services.engine, policy, much_later)
    assert report.work_items == 1 and report.conversation_turns == 1
    stripped = any_services.worklist.get(item.id)
    assert stripped is not None and stripped.status == "resolved" and stripped.kind == "handover"
    assert stripped.asked is None and stripped.resolution is None
    assert all(event.note is None for event in stripped.events)
    with transaction(any_services.engine) as session:
        row = session.get(WorkItem, item.id)
        assert row is not None and row.phone is None and row.details == "{}"


def test_needs_from_before_the_to_do_get_items_at_start(any_services: Services) -> None:
    from tests.conftest import make_settings
    from voice_agent.alerts import ConsoleAlerter
    from voice_agent.services import build_services
    from voice_agent.store.tables import CallRecord

    now = any_services.clock.now()
    with transaction(any_services.engine) as session:
        session.add(
            OutboxRow(
                kind="patient_message",
                key="old:dead",
                payload="{}",
                status="dead",
                next_attempt_at=now,
                last_error="63016",
            )
        )
        session.add(CallRecord(call_sid="CA" + "9" * 32, caller="+5511987654407", flagged=True))

    def restart() -> Services:
        return build_services(
            make_settings(str(any_services.engine.url)),
            clock=any_services.clock,  # type: ignore[arg-type]
            alerter=ConsoleAlerter(),
            engine=any_services.engine,
        )

    restarted = restart()
    kinds = sorted(item.kind for item in restarted.worklist.items())
    assert kinds == ["dead_letter", "emergency"]
    assert sorted(item.kind for item in restart().worklist.items()) == kinds  # once only
