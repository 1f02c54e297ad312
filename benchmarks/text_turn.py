"""Offline receptionist turn latency: every scenario of tests/scenarios replayed in-process
through ConversationService (no HTTP), on a SQLite file, with the sample clinic.

    python benchmarks/text_turn.py [--rounds 3] [--warmup 1] [--scenarios DIR]

Prints p50/p95/max per turn, overall and split by what the turn did: searched for slots,
booked or rescheduled (``book``), or neither (``other``). The
warm-up passes (not measured) replay the same scenarios first, so one-time costs of a fresh
process (SQL statement compilation, first use of each code path) do not count as turn latency.
As in production, time passes: each scenario starts a minute after the previous one and the
every-minute housekeeping job drops expired holds (offers are held 5 minutes), so holds of
abandoned conversations do not pile up for hours. ``--fixed-clock`` keeps the clock still.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
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
from voice_agent.tools.catalog import build_registry  # noqa: E402
from voice_agent.tools.context import ToolContext  # noqa: E402

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))

REGISTRY = build_registry()
"""The tools the channels offer, built once for this module (a build reads every signature)."""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


async def run(
    rounds: int,
    warmup: int = 0,
    folder_of_scenarios: Path | None = None,
    *,
    fixed_clock: bool = False,
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"all": [], "search": [], "book": [], "other": []}
    scenarios = sorted((folder_of_scenarios or ROOT / "tests" / "scenarios").glob("*/*.yaml"))
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=f"sqlite:///{folder}/bench.db", clinic_file=DEFAULT_CLINIC_FILE
        )
        clock = FixedClock(NOW)
        services = build_services(settings, clock=clock, alerter=ConsoleAlerter())
        conversations = ConversationService(services, use_llm=False)
        for round_number in range(warmup + rounds):
            measured = round_number >= warmup
            for index, path in enumerate(scenarios):
                if not fixed_clock:  # about 3.5 hours in all: still Monday, same "tomorrow"
                    clock.advance(timedelta(minutes=1))
                    await services.booking.purge_expired_holds()
                scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
                # A distinct patient per scenario and round, so bookings do not pile up on one.
                phone = f"+55119{8765 + round_number:04d}{index:04d}"
                setup = scenario.get("setup") or {}
                ctx = ToolContext(services, "setup", f"setup-{phone}", phone, path.parent.name)
                if setup.get("patient"):
                    await REGISTRY.dispatch("register_patient", setup["patient"], ctx)
                for booking in setup.get("bookings", []):
                    booking = dict(booking)
                    option = booking.pop("option", "1")
                    await REGISTRY.dispatch("find_slots", booking, ctx)
                    await REGISTRY.dispatch(
                        "book_appointment", {"option": option, "confirmed_by_patient": True}, ctx
                    )
                # One conversation per language, scenario and round (stems repeat across languages).
                session = f"{path.parent.name}/{path.stem}-{round_number}"
                for step in scenario["turns"]:
                    started = time.perf_counter()
                    reply = await conversations.handle(
                        "bench", session, str(step["say"]), phone=phone, phone_verified=True
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                    if not measured:
                        continue
                    timings["all"].append(elapsed)
                    timings[_kind(reply.tool_calls)].append(elapsed)
        services.close()
    return timings


def _kind(tools: list[str]) -> str:
    if "find_slots" in tools:
        return "search"
    if "book_appointment" in tools or "reschedule_appointment" in tools:
        return "book"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="measured passes")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured passes first")
    parser.add_argument("--scenarios", type=Path, default=None, help="default: tests/scenarios")
    parser.add_argument("--fixed-clock", action="store_true", help="holds never expire")
    args = parser.parse_args()
    timings = asyncio.run(
        run(args.rounds, args.warmup, args.scenarios, fixed_clock=args.fixed_clock)
    )
    print("offline text turn latency (ms), in-process, SQLite file, sample clinic")
    print(f"{'turns':>8} {'count':>6} {'p50':>7} {'p95':>7} {'max':>7}")
    for name in ("all", "other", "search", "book"):
        values = timings[name]
        if not values:
            continue
        print(
            f"{name:>8} {len(values):>6} {statistics.median(values):7.1f} "
            f"{percentile(values, 0.95):7.1f} {max(values):7.1f}"
        )
    clock = " --fixed-clock" if args.fixed_clock else ""
    print(
        f"reproduce: python benchmarks/text_turn.py --rounds {args.rounds} --warmup {args.warmup}"
        + clock
    )


if __name__ == "__main__":
    main()
