"""Confirmation steps run by several app processes on one database: N steps due at once (half
WhatsApp requests, half calls through the local Twilio REST fake), P processes claiming them.
Reports steps per second and checks every message and call happened exactly once.

Reproduce:  python benchmarks/confirmations.py [--steps 200] [--processes 3]
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
from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import ACCOUNT_SID, AUTH_TOKEN, build
from tests.integration.test_confirmation_processes import run_processes, settings, steps_due_now
from voice_agent.clock import FixedClock
from voice_agent.store.db import make_engine


async def run(url: str, steps: int, processes: int, label: str) -> None:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        for i in range(steps):
            twilio.open_window(f"+55119876{55000 + i:05d}")
        overrides = settings(twilio)
        services = build(make_engine(url), FixedClock(NOW), **overrides)
        ids = await steps_due_now(services, steps)
        started = time.perf_counter()
        reports = await asyncio.to_thread(run_processes, url, overrides, processes)
        elapsed = time.perf_counter() - started
        ran = Counter(step_id for report in reports for step_id, _ in report)
        once = sorted(ran) == sorted(ids) and max(ran.values()) == 1
        sent = Counter(m["to"] for m in twilio.messages())
        sent += Counter(c["to"] for c in twilio.calls())
        once = once and len(sent) == steps and max(sent.values()) == 1
        shares = [len(report) for report in reports]
        print(
            f"{label}: {steps} steps by {processes} processes in {elapsed:.2f}s "
            f"(incl. ~1.5 s process start): {steps / elapsed:.0f} steps/s, shares {shares}, "
            f"exactly once: {once}"
        )
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--postgres", help="also run on this PostgreSQL database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{tmp}/bench.db", args.steps, args.processes, "SQLite"))
    if args.postgres:
        engine = make_engine(args.postgres)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS bench_confirm CASCADE"))
            connection.execute(text("CREATE SCHEMA bench_confirm"))
        engine.dispose()
        url = f"{args.postgres}?options=-csearch_path%3Dbench_confirm"
        asyncio.run(run(url, args.steps, args.processes, "PostgreSQL"))


if __name__ == "__main__":
    main()
