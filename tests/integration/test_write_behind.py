"""The process-wide write-behind queue: every call's events in one transaction per round, the
question-only interaction rows with their hooks, a bad row isolated, nothing lost in an outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import Engine, event, select
from sqlmodel import col

from tests.conftest import make_settings
from voice_agent.interactions import Actor
from voice_agent.services import Services
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import (
    CallEvent,
    CallOutcome,
    CallRecord,
    Interaction,
    InteractionKind,
)
from voice_agent.store.write_behind import MAX_ATTEMPTS, WriteBehind
from voice_agent.voice.call_records import CALL_EVENTS, CallRecorder


def _open_calls(services: Services, sids: list[str]) -> None:
    with transaction(services.engine) as session:
        for sid in sids:
            session.add(CallRecord(call_sid=sid, caller="+5511999990000", language="pt-BR"))


def _events(engine: Engine, sid: str) -> list[tuple[int, str, str]]:
    with transaction(engine) as session:
        rows = session.execute(
            select(CallEvent).where(col(CallEvent.call_sid) == sid).order_by(col(CallEvent.seq))
        ).scalars()
        return [(r.seq, r.kind, r.content) for r in rows]


def _count_commits(engine: Engine) -> list[int]:
    commits = [0]

    @event.listens_for(engine, "commit")
    def _on_commit(_connection: object) -> None:
        commits[0] += 1

    return commits


def test_every_calls_events_in_one_transaction(any_services: Services) -> None:
    services = any_services
    sids = [f"CA{i:032d}" for i in range(5)]
    _open_calls(services, sids)
    commits = _count_commits(services.engine)

    async def calls() -> None:
        writer = WriteBehind(services.engine, interval=3600)  # only explicit flushes
        recorders = [CallRecorder(services.engine, sid, writer) for sid in sids]
        for recorder in recorders:
            recorder.event("caller", "Quanto custa a consulta?")
            await recorder.tool("clinic_info", {"topic": "prices"}, {"price": 300}, True)
            recorder.event("receptionist", "A consulta custa 300 reais.")
        assert writer.pending == 15
        await writer.flush()
        assert writer.pending == 0
        await writer.close()

    asyncio.run(calls())
    assert commits[0] == 1
    for sid in sids:
        assert [(seq, kind) for seq, kind, _ in _events(services.engine, sid)] == [
            (1, "caller"),
            (2, "tool"),
            (3, "receptionist"),
        ]
    assert _events(services.engine, sids[0])[0][2] == "Quanto custa a consulta?"  # decrypted


def test_rows_land_within_the_interval_and_the_end_flushes(any_services: Services) -> None:
    services = any_services
    sid = "CA" + "7" * 32
    _open_calls(services, [sid])

    async def call() -> tuple[int, int]:
        writer = WriteBehind(services.engine, interval=0.05)
        recorder = CallRecorder(services.engine, sid, writer)
        recorder.event("caller", "Bom dia")
        for _ in range(200):  # the timer writes it, no flush asked for
            await asyncio.sleep(0.02)
            if _events(services.engine, sid):
                break
        landed = len(_events(services.engine, sid))
        recorder.event("receptionist", "Bom dia! Em que posso ajudar?")
        await recorder.finish(CallOutcome.completed)  # writes the rest before closing
        after = len(_events(services.engine, sid))
        await writer.close()
        return landed, after

    assert asyncio.run(call()) == (1, 2)
    with transaction(services.engine) as session:
        record = session.get(CallRecord, sid)
        assert record is not None and record.outcome == CallOutcome.completed


def test_question_rows_carry_the_caller_and_run_the_hooks(any_services: Services) -> None:
    services = any_services
    sid = "CA" + "3" * 32
    _open_calls(services, [sid])
    seen: list[str] = []
    services.interactions.add_hook(lambda _session, row: seen.append(row.kind))

    async def call() -> None:
        writer = WriteBehind(services.engine, interval=3600)
        recorder = CallRecorder(services.engine, sid, writer, services.interactions)
        recorder.note(
            InteractionKind.information,
            channel="voice",
            patient_id=None,
            details={"topic": "prices", "about": "consulta"},
            actor=Actor("patient", call_id=sid, verified_by="carrier"),
        )
        assert seen == []  # not before the batch
        await writer.close()

    asyncio.run(call())
    assert seen == [InteractionKind.information]
    with transaction(services.engine) as session:
        row = session.execute(select(Interaction)).scalars().one()
    assert (row.kind, row.channel, row.actor, row.call_id, row.verified_by) == (
        InteractionKind.information,
        "voice",
        "patient",
        sid,
        "carrier",
    )


def test_a_bad_row_does_not_take_the_batch_with_it(any_services: Services) -> None:
    services = any_services
    sid = "CA" + "5" * 32
    _open_calls(services, [sid])

    async def call() -> int:
        writer = WriteBehind(services.engine, interval=3600)
        row = {"call_sid": sid, "kind": "caller", "content": "Olá"}
        writer.insert(CALL_EVENTS, {**row, "seq": 1, "at": services.clock.now()})
        writer.insert(CALL_EVENTS, {**row, "seq": 1, "at": services.clock.now()})  # duplicate
        writer.insert(CALL_EVENTS, {**row, "seq": 2, "at": services.clock.now()})
        await writer.flush()
        kept = writer.pending  # the duplicate, tried again next round
        for _ in range(MAX_ATTEMPTS):
            await writer.flush()
        assert writer.pending == 0  # then given up (logged, not retried for ever)
        await writer.close()
        return kept

    assert asyncio.run(call()) == 1
    assert [seq for seq, _, _ in _events(services.engine, sid)] == [1, 2]


def test_nothing_is_lost_while_the_database_is_down(tmp_path: Path) -> None:
    down = make_engine(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")  # its folder does not exist
    up = make_engine(f"sqlite:///{tmp_path / 'up.db'}")
    from voice_agent.services import build_services

    services = build_services(make_settings(str(up.url)), engine=up)
    sid = "CA" + "9" * 32
    _open_calls(services, [sid])

    async def call() -> int:
        writer = WriteBehind(down, interval=3600)
        recorder = CallRecorder(down, sid, writer)
        recorder.event("caller", "Alô?")
        recorder.event("receptionist", "Clínica, bom dia.")
        for _ in range(MAX_ATTEMPTS + 2):  # more rounds than a bad row would get
            await writer.flush()
        kept = writer.pending
        writer.engine = up  # the database is back
        await writer.close()
        return kept

    assert asyncio.run(call()) == 2
    assert [kind for _, kind, _ in _events(up, sid)] == ["caller", "receptionist"]
    down.dispose()
    services.close()
