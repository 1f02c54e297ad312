"""The driver-level fast path (``store.prepared``) against SQLAlchemy's own execution of the same
statements, on SQLite and PostgreSQL: what is stored (encrypted as by the ORM), what is read
back, and the errors a caller relies on (a clash is SQLAlchemy's ``IntegrityError``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError

from voice_agent.conversation import state as state_module
from voice_agent.conversation import turn_log, turn_store
from voice_agent.patients import service as patients_module
from voice_agent.services import Services
from voice_agent.store.db import reading
from voice_agent.store.prepared import Prepared

AT = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
SECRET = "Maria Souza, dor nas costas"


def _turn(conversation: str, seq: int) -> dict[str, object]:
    return {
        "conversation_id": conversation,
        "seq": seq,
        "at": AT,
        "channel": "whatsapp",
        "patient_id": None,
        "language": "pt-BR",
        "kind": "patient",
        "engine": None,
        "content": f"{SECRET} #{seq}",
    }


def test_the_state_upsert_stores_what_sqlalchemy_stores(any_services: Services) -> None:
    engine = any_services.engine
    upsert = state_module._UPSERT[engine.dialect.name]
    row = {"key": "k-fast", "channel": "chat", "state": SECRET, "updated_at": AT}
    with engine.begin() as db:
        upsert.run(db, row)
        db.execute(upsert.statement, {**row, "key": "k-stock"})
    with engine.begin() as db:  # the conflict branch: the second save of a conversation
        upsert.run(db, {**row, "state": SECRET + " (2)"})
        db.execute(upsert.statement, {**row, "key": "k-stock", "state": SECRET + " (2)"})
    table = state_module._TABLE
    with engine.connect() as db:
        read = {
            key: (state, updated_at)
            for key, state, updated_at in db.execute(
                select(table.c.key, table.c.state, table.c.updated_at).order_by(table.c.key)
            )
        }
        stored = db.execute(text("SELECT state FROM conversation_state")).scalars().all()
    assert read["k-fast"] == read["k-stock"] == (SECRET + " (2)", read["k-stock"][1])
    assert read["k-fast"][1] == read["k-stock"][1]
    assert len(stored) == 2 and not any("Maria" in value for value in stored)  # encrypted


def test_the_timeline_insert_and_the_turn_reads_match_sqlalchemy(any_services: Services) -> None:
    engine = any_services.engine
    insert = turn_log._INSERT
    with engine.begin() as db:
        insert.run_many(db, [_turn("conv-fast", 1), _turn("conv-fast", 2)])
        db.execute(insert.statement, [_turn("conv-stock", 1), _turn("conv-stock", 2)])
    table = turn_log._TURNS
    columns = [c for c in table.c if c.name not in ("id", "conversation_id")]
    with engine.connect() as db:
        fast, stock = (
            db.execute(
                select(*columns).where(table.c.conversation_id == name).order_by(table.c.seq)
            ).all()
            for name in ("conv-fast", "conv-stock")
        )
        stored = db.execute(text("SELECT content FROM conversation_turn")).scalars().all()
    assert fast == stock and len(fast) == 2
    assert fast[0].content == f"{SECRET} #1" and fast[0].at == AT
    assert not any("Maria" in value for value in stored)

    # The same numbers again: the clash a turn's write retries on.
    with pytest.raises(IntegrityError), engine.begin() as db:
        insert.run_many(db, [_turn("conv-fast", 2)])


async def test_the_turn_reads_match_sqlalchemy(any_services: Services) -> None:
    engine = any_services.engine
    patient = await any_services.patients.find_or_create("+5511987654601", "pt-BR")
    await any_services.patients.update(patient.id, full_name="Maria Souza")
    with engine.begin() as db:
        state_module._UPSERT[engine.dialect.name].run(
            db, {"key": "k-read", "channel": "chat", "state": SECRET, "updated_at": AT}
        )
    digest = any_services.patients.phone_hash("+5511987654601")
    cases: list[tuple[Prepared, dict[str, str]]] = [
        (turn_store._READ, {"key": "k-read", "conversation_id": "conv-k-read"}),
        (turn_store._READ, {"key": "nobody", "conversation_id": "conv-nobody"}),
        (patients_module._ON_FILE, {"digest": digest}),
        (patients_module._ON_FILE, {"digest": "no such hash"}),
    ]
    with reading(engine) as db:
        for prepared, params in cases:
            assert prepared.rows(db, params) == [
                tuple(row) for row in db.execute(prepared.statement, params)
            ]
        [(state, open_work)] = turn_store._READ.rows(db, cases[0][1])
        [(on_file_id, name, language)] = patients_module._ON_FILE.rows(db, {"digest": digest})
    assert (state, open_work) == (SECRET, False)
    assert (on_file_id, name, language) == (patient.id, "Maria Souza", "pt-BR")


def test_what_the_fast_path_does_not_take_is_refused_clearly(any_services: Services) -> None:
    table = state_module._TABLE
    listed = Prepared(select(table.c.key).where(table.c.key.in_(bindparam("keys", expanding=True))))
    with reading(any_services.engine) as db:
        with pytest.raises(ValueError, match="expanding"):
            listed.rows(db, {"keys": ["a", "b"]})
        with pytest.raises(ValueError, match="'digest'"):
            patients_module._ON_FILE.rows(db, {})
