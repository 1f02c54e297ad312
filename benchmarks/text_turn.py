"""Text turn latency, in-process through ConversationService (no HTTP), SQLite file, sample
clinic. Two modes:

Offline receptionist: every scenario of tests/scenarios replayed.

    python benchmarks/text_turn.py [--rounds 3] [--warmup 1] [--scenarios DIR]

OpenAI receptionist (``--openai``): the Responses loop against the local fake Responses server
(tests/fakes/openai_responses.py, answering at once), and what is reported is the app's own
time per turn *outside the model*: the turn's wall time minus the time from sending each
request to its ``response.completed`` (the fake's work, the SDK's HTTP and event parsing) and
minus the tools' own time. Three kinds of turn: a plain answer (one request), a question
answered with ``clinic_info`` and a slot search (two requests each).

    python benchmarks/text_turn.py --openai [--turns 200] [--openai-warmup 20] [--no-store]
        [--profile FILE] [--loop auto|asyncio]

``--loop``: the event loop the turns run on. ``auto`` (the default) is what ``voice-agent serve``
runs the app on: uvicorn's ``loop="auto"``, uvloop when it is installed (``uvicorn[standard]``
installs it), else asyncio's own; ``asyncio`` forces the latter.

``--profile FILE``: a deterministic profile of the measured turns on the CPU clock, every thread
(the database work runs in worker threads), with yappi (``pip install yappi``), saved as pstats
(``python -m pstats FILE``; includes the model windows, which the figures leave out).

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
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, SupportsIndex
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


OPENAI_KINDS = ("text", "info", "search")
MESSAGES = {"text": "Bom dia", "info": "Qual o horário?", "search": "Dermatologia amanhã"}


def _answer(body: dict[str, Any]) -> Any:
    """The fake's endless script: a plain answer, or a tool call and then an answer."""
    from tests.fakes.openai_responses import Call, Say

    last = body["input"][-1]
    if last.get("type") == "function_call_output":
        return Say("Tenho três horários amanhã. Qual prefere?", chunks=4)
    if last.get("content") == MESSAGES["info"]:
        return Call([("clinic_info", {"topic": "hours", "about": None})])
    if last.get("content") == MESSAGES["search"]:
        return Call([("find_slots", {"service": "dermatologia", "dates": ["2026-11-24"]})])
    return Say("Claro! Em que posso ajudar?", chunks=4)


class _Endless(list[Any]):
    def __bool__(self) -> bool:
        return True

    def pop(self, index: SupportsIndex = -1) -> Any:
        return _answer


def _serve_fake(ready: Any, stop: Any) -> None:
    """The fake Responses server in a process of its own: its validation and streaming do not
    take CPU or the GIL from the app being measured."""
    from tests.fakes.openai_responses import FakeOpenAIResponses

    with FakeOpenAIResponses("gpt-4.1-mini") as fake:
        fake.script = _Endless()
        ready.put(fake.base_url)
        stop.wait()


async def run_openai(
    turns: int, warmup: int, *, store: bool, profile: Path | None = None
) -> dict[str, list[float]]:
    """Overhead (ms) per OpenAI turn by kind, plus ``wall:<kind>`` whole-turn times."""
    timings: dict[str, list[float]] = {}
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Queue(), spawn.Event()
    server = spawn.Process(target=_serve_fake, args=(ready, stop), daemon=True)
    server.start()
    try:
        base_url = ready.get(timeout=60)
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(
                database_url=f"sqlite:///{folder}/bench.db",
                clinic_file=DEFAULT_CLINIC_FILE,
                openai_api_key="sk-test",  # type: ignore[arg-type]
                openai_base_url=base_url,
                text_model="gpt-4.1-mini",
                text_store=store,
            )
            clock = FixedClock(NOW)
            services = build_services(settings, clock=clock, alerter=ConsoleAlerter())
            conversations = ConversationService(services)
            llm = conversations.llm
            assert llm is not None
            for index in range(warmup + turns):
                if profile is not None and index == warmup:
                    _start_profile()
                kind = OPENAI_KINDS[index % len(OPENAI_KINDS)]
                session = f"bench-{index // 12}"  # a conversation of 12 turns, then a new one
                if index % 12 == 0:  # as in production, time passes and old holds expire
                    clock.advance(timedelta(minutes=6))
                    await services.booking.purge_expired_holds()
                    if index >= warmup:
                        timings.setdefault("reference", []).append(reference_ms())
                started, cpu = time.perf_counter(), time.process_time()
                reply = await conversations.handle(
                    "whatsapp",
                    session,
                    MESSAGES[kind],
                    phone=f"+55119876{index // 12:05d}",
                    phone_verified=True,
                )
                elapsed = (time.perf_counter() - started) * 1000
                used = (time.process_time() - cpu) * 1000
                if reply.engine != "llm":
                    raise SystemExit(f"turn {index} fell back to {reply.engine}: see the log")
                if index < warmup:
                    continue
                stats = llm.last_stats
                overhead = elapsed - stats.model_ms - stats.tool_ms
                cpu_overhead = used - stats.model_cpu_ms - stats.tool_cpu_ms
                for key in (kind, "all"):
                    timings.setdefault(key, []).append(overhead)
                    timings.setdefault(f"cpu:{key}", []).append(cpu_overhead)
                    timings.setdefault(f"wall:{key}", []).append(elapsed)
                    timings.setdefault(f"model:{key}", []).append(stats.model_ms)
            if profile is not None:
                _save_profile(profile)
            services.close()
    finally:
        stop.set()
        server.join(timeout=10)
    return timings


REFERENCE_DOCUMENT = {
    "items": [{"role": "user", "content": f"mensagem {n} " * 8, "n": n} for n in range(40)]
}


def reference_ms() -> float:
    """A fixed piece of pure-Python work (JSON out and back, a regex pass, sorting), timed
    between conversations: the machine's speed at that moment. This VM's speed drifts (the
    same tree's turn p50 varies ≈ 2× within minutes, and this figure with it), so a run's
    figures are read against its own reference (the report prints both)."""
    import json
    import re

    started = time.perf_counter()
    for _ in range(20):
        text = json.dumps(REFERENCE_DOCUMENT, ensure_ascii=False)
        parsed = json.loads(text)
        words = re.findall(r"\w+", text)
        sorted(words)
        assert len(parsed["items"]) == 40
    return (time.perf_counter() - started) * 1000


def _start_profile() -> None:
    try:
        import yappi
    except ImportError:
        raise SystemExit("--profile needs yappi: pip install yappi") from None
    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)


def _save_profile(path: Path) -> None:
    import pstats

    import yappi

    yappi.stop()
    yappi.get_func_stats().save(str(path), type="pstat")
    print(f"profile of the measured turns (CPU clock, all threads): {path}")
    pstats.Stats(str(path)).sort_stats("cumulative").print_stats(r"voice_agent", 25)


def event_loop_factory(choice: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop ``voice-agent serve`` runs on (uvicorn's ``loop="auto"``: uvloop when installed),
    or asyncio's own; with its name for the report."""
    if choice == "auto":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return f"uvloop {uvloop.__version__}", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def report_openai(
    timings: dict[str, list[float]], args: argparse.Namespace, loop_name: str
) -> None:
    store = "off (items resent)" if args.no_store else "on (previous_response_id)"
    print(
        f"OpenAI text turn: app time outside the model (ms), fake Responses server, store {store}, "
        f"{loop_name} event loop"
    )
    print(
        f"{'turns':>8} {'count':>6} {'p50':>7} {'p95':>7} {'max':>7}  "
        f"{'cpu p50':>8} {'cpu p95':>8}  {'wall p50':>8} {'model p50':>9}"
    )
    for name in ("all", *OPENAI_KINDS):
        values = timings.get(name, [])
        if not values:
            continue
        cpu = timings[f"cpu:{name}"]
        wall = statistics.median(timings[f"wall:{name}"])
        model = statistics.median(timings[f"model:{name}"])
        print(
            f"{name:>8} {len(values):>6} {statistics.median(values):7.2f} "
            f"{percentile(values, 0.95):7.2f} {max(values):7.2f}  "
            f"{statistics.median(cpu):8.2f} {percentile(cpu, 0.95):8.2f}  "
            f"{wall:8.2f} {model:9.2f}"
        )
    print(
        "p50/p95/max: wall time outside the model; cpu: the process's CPU time outside the model "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    reference = timings.get("reference")
    if reference:
        print(
            f"machine speed: a fixed reference workload took p50 {statistics.median(reference):.2f}"
            f" ms during the run ({len(reference)} times, between conversations); the turn's own "
            f"p95 is {percentile(timings['all'], 0.95) / statistics.median(reference):.2f}× it"
        )
    flags = (" --no-store" if args.no_store else "") + (
        " --loop asyncio" if args.loop == "asyncio" else ""
    )
    print(
        f"reproduce: python benchmarks/text_turn.py --openai --turns {args.turns} "
        f"--openai-warmup {args.openai_warmup}{flags}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="measured passes")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured passes first")
    parser.add_argument("--scenarios", type=Path, default=None, help="default: tests/scenarios")
    parser.add_argument("--fixed-clock", action="store_true", help="holds never expire")
    parser.add_argument("--openai", action="store_true", help="the OpenAI loop's own overhead")
    parser.add_argument("--turns", type=int, default=200, help="--openai: measured turns")
    parser.add_argument(
        "--openai-warmup", type=int, default=20, help="--openai: unmeasured turns first"
    )
    parser.add_argument("--no-store", action="store_true", help="--openai: store=false")
    parser.add_argument("--profile", type=Path, default=None, help="--openai: yappi pstats file")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio"),
        default="auto",
        help="--openai: auto = as voice-agent serve runs (uvloop when installed)",
    )
    args = parser.parse_args()
    if args.openai:
        loop_name, new_loop = event_loop_factory(args.loop)
        with asyncio.Runner(loop_factory=new_loop) as runner:
            timings = runner.run(
                run_openai(
                    args.turns, args.openai_warmup, store=not args.no_store, profile=args.profile
                )
            )
        report_openai(timings, args, loop_name)
        return
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
