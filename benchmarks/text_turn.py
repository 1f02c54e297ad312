"""Offline receptionist turn latency: every scenario of tests/scenarios replayed in-process
through ConversationService (no HTTP), on a SQLite file, with the sample clinic.

    python benchmarks/text_turn.py [--rounds 3]

Prints p50/p95/max per turn, overall and split by whether the turn searched for slots.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_agent.alerts import ConsoleAlerter  # noqa: E402
from voice_agent.clock import FixedClock  # noqa: E402
from voice_agent.conversation.engine import ConversationService  # noqa: E402
from voice_agent.services import build_services  # noqa: E402
from voice_agent.settings import DEFAULT_CLINIC_FILE, Settings  # noqa: E402
from voice_agent.tools.context import ToolContext  # noqa: E402

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


async def run(rounds: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"all": [], "search": [], "other": []}
    scenarios = sorted((ROOT / "tests" / "scenarios").glob("*/*.yaml"))
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=f"sqlite:///{folder}/bench.db", clinic_file=DEFAULT_CLINIC_FILE
        )
        services = build_services(settings, clock=FixedClock(NOW), alerter=ConsoleAlerter())
        conversations = ConversationService(services, use_llm=False)
        for round_number in range(rounds):
            for index, path in enumerate(scenarios):
                scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
                # A distinct patient per scenario and round, so bookings do not pile up on one.
                phone = f"+55119{8765 + round_number:04d}{index:04d}"
                setup = scenario.get("setup") or {}
                ctx = ToolContext(services, "setup", f"setup-{phone}", phone, path.parent.name)
                if setup.get("patient"):
                    await services.registry.dispatch("register_patient", setup["patient"], ctx)
                for booking in setup.get("bookings", []):
                    booking = dict(booking)
                    option = booking.pop("option", "1")
                    await services.registry.dispatch("find_slots", booking, ctx)
                    await services.registry.dispatch(
                        "book_appointment", {"option": option, "confirmed_by_patient": True}, ctx
                    )
                session = f"{path.stem}-{round_number}"
                for step in scenario["turns"]:
                    started = time.perf_counter()
                    reply = await conversations.handle(
                        "bench", session, str(step["say"]), phone=phone, phone_verified=True
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                    timings["all"].append(elapsed)
                    kind = "search" if "find_slots" in reply.tool_calls else "other"
                    timings[kind].append(elapsed)
        services.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    timings = asyncio.run(run(args.rounds))
    print("offline text turn latency (ms), in-process, SQLite file, sample clinic")
    print(f"{'turns':>8} {'count':>6} {'p50':>7} {'p95':>7} {'max':>7}")
    for name in ("all", "other", "search"):
        values = timings[name]
        if not values:
            continue
        print(
            f"{name:>8} {len(values):>6} {statistics.median(values):7.1f} "
            f"{percentile(values, 0.95):7.1f} {max(values):7.1f}"
        )
    print(f"reproduce: python benchmarks/text_turn.py --rounds {args.rounds}")


if __name__ == "__main__":
    main()
