"""What the to-do costs: an interaction row written with and without the work-item hook (a
booking-like row opens nothing, a hand-over opens an item), a text turn's timeline write, and the
to-do page's reads (the open list and the change marker its polling asks for) with N open items.
On SQLite (a file) and, with --postgres, PostgreSQL.

Reproduce:  python benchmarks/worklist.py [--rows 300] [--items 1000]
            [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from sqlalchemy import text

from tests.conftest import NOW, make_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.clock import FixedClock
from voice_agent.conversation.turn_log import TurnLog
from voice_agent.interactions import Actor, InteractionLog
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.tables import InteractionKind


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def _timed(count: int, step: Callable[[int], None]) -> list[float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        step(i)
        samples.append(time.perf_counter() - started)
    return samples


def run(url: str, rows: int, items: int, label: str) -> None:
    engine = make_engine(url)
    services: Services = build_services(
        make_settings(url), clock=FixedClock(NOW), alerter=ConsoleAlerter(), engine=engine
    )
    bare = InteractionLog(engine, services.clock)  # the same log, without any hook

    def record(log: InteractionLog, kind: InteractionKind, i: int, details: dict) -> None:
        actor = Actor("patient", call_id=f"conv-bench-{label}-{kind}-{i}")
        with transaction(engine) as session:
            log.record_in(session, kind, channel="web", details=details, actor=actor)

    information = {"topic": "prices", "about": "ecg"}
    handover = {"reason": "patient asked for staff"}
    without = _timed(rows, lambda i: record(bare, InteractionKind.information, i, information))
    hooked = _timed(
        rows, lambda i: record(services.interactions, InteractionKind.information, i, information)
    )
    opening = _timed(
        rows, lambda i: record(services.interactions, InteractionKind.transfer, i, handover)
    )
    print(f"{label}: interaction row, no hook:            {_ms(without)}")
    print(f"{label}: interaction row, every hook, no item: {_ms(hooked)}")
    print(f"{label}: hand-over row opening a work item:   {_ms(opening)}")

    tools = [{"name": "clinic_info", "arguments": {"topic": "prices"}, "output": {}, "ok": True}]
    turns = TurnLog(engine, services.worklist)

    def turn(i: int) -> None:
        asyncio.run(
            turns.record(
                conversation_id=f"conv-turns-{i % 20}",
                channel="web",
                at=NOW,
                text="quanto custa o eletrocardiograma?",
                reply="O eletrocardiograma custa R$ 120,00.",
                engine="offline",
                language="pt-BR",
                language_before="pt-BR",
                phone=None,
                tools=tools,
            )
        )

    print(f"{label}: a text turn's timeline (3 rows):     {_ms(_timed(rows, turn))}")

    extra = max(0, items - rows)
    for i in range(extra):
        record(services.interactions, InteractionKind.transfer, rows + i, handover)
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM work_item")).scalar()
    listing = _timed(20, lambda _: services.worklist.items(limit=200))
    marker = _timed(200, lambda _: services.worklist.marker())
    print(f"{label}: the open list (200 of {count} items): {_ms(listing)}")
    print(f"{label}: the polling marker:                  {_ms(marker)}")
    services.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--postgres", help="also run on this PostgreSQL database (emptied first)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.rows, args.items, "sqlite")
    if args.postgres:
        admin = make_engine(args.postgres)
        with admin.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS bench_worklist CASCADE"))
            connection.execute(text("CREATE SCHEMA bench_worklist"))
        admin.dispose()
        run(
            f"{args.postgres}?options=-csearch_path%3Dbench_worklist",
            args.rows,
            args.items,
            "postgresql",
        )


if __name__ == "__main__":
    main()
