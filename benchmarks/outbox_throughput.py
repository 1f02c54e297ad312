"""Outbox delivery throughput: N interactions → N Sheets rows through the local Google fake,
delivered by one process, on SQLite and PostgreSQL. Checks every row landed exactly once.

Reproduce:  python benchmarks/outbox_throughput.py [--rows 1000]
            [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from sqlalchemy import text

from tests.conftest import NOW
from tests.fakes.google_fake import GoogleFake
from tests.integration.integration_env import SHEET_ID, build, google_settings
from voice_agent.clock import FixedClock
from voice_agent.store.db import make_engine
from voice_agent.store.tables import InteractionKind


async def run(url: str, rows: int, label: str) -> None:
    with GoogleFake() as google, tempfile.TemporaryDirectory() as tmp:
        google.add_spreadsheet(SHEET_ID)
        services = build(
            make_engine(url), FixedClock(NOW), **google_settings(google.base_url, Path(tmp))
        )
        started = time.perf_counter()
        for i in range(rows):
            await services.interactions.record(
                InteractionKind.information, channel="voice", details={"topic": f"q{i}"}
            )
        enqueued = time.perf_counter() - started
        started = time.perf_counter()
        report = await services.outbox.drain()
        elapsed = time.perf_counter() - started
        refs = Counter(row[8] for row in google.rows(SHEET_ID)[1:])
        assert len(refs) == rows and max(refs.values()) == 1, "lost or doubled rows"
        appends = len(google.requests("POST", ":append"))
        print(
            f"{label}: {rows} interactions logged in {enqueued:.2f}s; outbox delivered "
            f"{report.delivered} rows in {elapsed:.2f}s ({report.delivered / elapsed:.0f} rows/s, "
            f"{appends} append requests), each exactly once"
        )
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{tmp}/bench.db", args.rows, "SQLite"))
    if args.postgres:
        admin = make_engine(args.postgres)
        with admin.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS bench_outbox CASCADE"))
            connection.execute(text("CREATE SCHEMA bench_outbox"))
        url = f"{args.postgres}?options=-csearch_path%3Dbench_outbox"
        asyncio.run(run(url, args.rows, "PostgreSQL"))


if __name__ == "__main__":
    main()
