"""SIP transport benchmark: N concurrent calls on ``openai_sip``, the app on the sideband only.

Two processes, as in ``benchmarks/relay.py``. The app (``voice-agent serve``) runs alone in one;
this process plays the OpenAI project (``tests/fakes/openai_sip.py``: signed webhooks, the calls
REST API, the sideband, every client event validated with the SDK's models) and the callers:

- each call is announced by a signed ``realtime.call.incoming`` webhook (calls ramped 10 at a
  time); the app verifies it, claims it in the database, builds the receptionist's config and
  ``accept``s; ``webhook_to_accept_ms`` is the time from the webhook POST leaving this process
  to the ``accept`` request arriving at the fake;
- then every call loops a realistic conversation: the caller talks (``--caller-pause`` seconds
  after the model stops), the model calls a tool (``clinic_info``, answered by the app's tool
  registry through the sideband), then speaks ``--speak-ms`` of audio, played out in real time
  (``output_audio_buffer.started``/``stopped``); one tool call per turn, about one turn every
  5 seconds per call;
- CPU of the app process only, from /proc/PID/stat, over the steady window.

Then, in the same run, ``benchmarks/relay.py`` with the same number of calls and window (its
own subprocess: the Media Streams bridge relaying 50 audio frames a second each way per call),
and the ratio of CPU per call.

Reproduce:  python benchmarks/sip_control.py --calls 20 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.relay import (  # noqa: E402
    CPROFILE,
    cpu_seconds,
    free_port,
    machine_idle,
    rss_mb,
    summary,
)
from tests.fakes.openai_sip import FakeOpenAISip  # noqa: E402
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn  # noqa: E402

SIP_URI = "sip:proj_bench000000000000000000@sip.api.openai.com;transport=tls"


def conversation(speak_ms: int, *, tools: bool = True) -> list[object]:
    if not tools:  # speech turns only: the sideband's own cost, no tool work and no tool rows
        return [
            SpeakTurn("Clínica São Lucas, bom dia! Em que posso ajudar?", audio_ms=speak_ms),
            UserTurn("Bom dia, eu queria uma informação."),
            SpeakTurn("Claro, pode falar.", audio_ms=speak_ms),
        ]
    return [
        SpeakTurn("Clínica São Lucas, bom dia! Em que posso ajudar?", audio_ms=speak_ms),
        UserTurn("Qual o horário de funcionamento?"),
        FunctionCallTurn("clinic_info", {"topic": "hours"}),
        SpeakTurn("Segunda a sexta, das oito às dezenove.", audio_ms=speak_ms),
        UserTurn("E aceitam Unimed?"),
        FunctionCallTurn("clinic_info", {"topic": "insurances", "about": "Unimed"}),
        SpeakTurn("Sim, aceitamos Unimed.", audio_ms=speak_ms),
    ]


def headers(index: int) -> list[tuple[str, str]]:
    return [
        ("From", f"<sip:+5511987{index:06d}@bench.pstn.twilio.com>;tag={index}"),
        ("To", "<sip:+551134567800@sip.api.openai.com>"),
        ("Call-ID", f"{index}@bench"),
    ]


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    fake = FakeOpenAISip(
        conversation(args.speak_ms, tools=not args.no_tools),
        audio_pace=1.0,
        keep_history=False,
        validate_outgoing=True,
    )
    fake.realtime.loop_script = True
    fake.realtime.caller_pause = args.caller_pause
    app_port = free_port()
    async with fake:
        with tempfile.TemporaryDirectory() as folder, open(args.log, "w") as log:
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "VOICE_AGENT_DATABASE_URL": f"sqlite:///{folder}/sip.db",
                "VOICE_AGENT_PUBLIC_URL": "https://bench.example",
                "OPENAI_API_KEY": "test",
                "OPENAI_BASE_URL": fake.base_url,
                "VOICE_AGENT_OPENAI_WEBSOCKET_BASE_URL": fake.websocket_base_url,
                "OPENAI_WEBHOOK_SECRET": fake.webhook_secret,
                "VOICE_AGENT_OPENAI_SIP_URI": SIP_URI,
                "VOICE_AGENT_SIP_TRUST_TRUNK_CALLER_ID": "true",
                "VOICE_AGENT_SIP_MAX_CALLS": str(args.calls + 10),
                "VOICE_AGENT_IDLE_TIMEOUT_SECONDS": "600",
                "VOICE_AGENT_MAX_CALL_SECONDS": "3600",
                "NO_PROXY": "127.0.0.1,localhost",
            }
            command = ["-m", "voice_agent", "serve", "--port", str(app_port)]
            if args.cprofile:
                command = ["-c", CPROFILE % args.cprofile, *command[2:]]
            app = subprocess.Popen(
                [sys.executable, *command],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=folder,
            )
            url = f"http://127.0.0.1:{app_port}/openai/webhook"
            try:
                async with httpx.AsyncClient() as http:
                    for _ in range(1200):  # up to 2 min: start-up is slow on a loaded machine
                        try:
                            await http.get(f"http://127.0.0.1:{app_port}/health", timeout=1)
                            break
                        except httpx.HTTPError:
                            await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                idle_rss = rss_mb(app.pid)
                cpu0, t0 = cpu_seconds(app.pid), time.monotonic()
                await asyncio.sleep(args.idle_seconds)  # the process's own timers and jobs
                idle_cores = (cpu_seconds(app.pid) - cpu0) / (time.monotonic() - t0)
                statuses: list[int] = []
                for start in range(0, args.calls, 10):
                    batch = range(start, min(args.calls, start + 10))
                    rung = await asyncio.gather(*(fake.ring(url, headers(i)) for i in batch))
                    statuses += [response.status_code for _, response in rung]
                    await asyncio.sleep(0.2)
                await asyncio.sleep(3.0)  # every call greeted and talking
                accepted = sum(1 for c in fake.calls.values() if c.state == "accepted")
                tools0 = sum(len(s.tool_outputs) for s in fake.realtime.sessions)
                events0 = sum(s.received_count for s in fake.realtime.sessions)
                began = time.monotonic()
                profiler = py_spy(app.pid, args.profile, args.seconds)
                cpu0, own0, machine0 = cpu_seconds(app.pid), time.process_time(), machine_idle()
                await asyncio.sleep(args.seconds)
                cpu1, own1, machine1 = cpu_seconds(app.pid), time.process_time(), machine_idle()
                elapsed = time.monotonic() - began
                busy_rss = rss_mb(app.pid)
                tools = sum(len(s.tool_outputs) for s in fake.realtime.sessions) - tools0
                events = sum(s.received_count for s in fake.realtime.sessions) - events0
                still_up = sum(1 for c in fake.calls.values() if c.state == "accepted")
                if profiler is not None:
                    profiler.wait(60)
            finally:
                app.terminate()
                try:
                    app.wait(30)
                except subprocess.TimeoutExpired:
                    app.kill()
    app_cores = (cpu1 - cpu0) / elapsed
    idle_share = (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1])
    return {
        "calls": args.calls,
        "seconds": args.seconds,
        "webhook_statuses": sorted(set(statuses)),
        "accepted": accepted,
        "still_up_after_window": still_up,
        "violations": fake.violations[:5],
        "webhook_to_accept_ms": summary(fake.accept_latencies),
        "tool_calls_per_call_minute": round(tools / args.calls / elapsed * 60, 1),
        "sideband_client_events_per_call_second": round(events / args.calls / elapsed, 2),
        "app_cpu_cores": round(app_cores, 4),
        "app_cpu_idle_cores": round(idle_cores, 4),
        "cpu_per_call_pct_of_core": round(100 * app_cores / args.calls, 4),
        "cpu_per_call_net_pct_of_core": round(100 * (app_cores - idle_cores) / args.calls, 4),
        "memory_per_call_mb": round((busy_rss - idle_rss) / args.calls, 3),
        "load_generator_cpu_cores": round((own1 - own0) / elapsed, 3),
        "machine_idle_pct": round(100 * idle_share, 1),
    }


def py_spy(pid: int, output: str | None, seconds: float) -> subprocess.Popen[bytes] | None:
    """A py-spy recording of the app over the window, when asked for and installed."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not output or not spy:
        return None
    return subprocess.Popen(
        [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "-f", "raw",
         "-o", output],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def run_relay(calls: int, seconds: float, idle_seconds: float) -> dict[str, object]:
    """``benchmarks/relay.py`` with the same load, in its own processes; its JSON result."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "relay.py"), "--calls", str(calls),
         "--seconds", f"{seconds:g}", "--idle-seconds", f"{idle_seconds:g}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"benchmarks/relay.py failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.splitlines()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="the app alone before the calls: its own timers' CPU, subtracted in the net figure",
    )
    parser.add_argument("--speak-ms", type=int, default=3000, help="audio per model answer")
    parser.add_argument("--caller-pause", type=float, default=1.5, help="caller speaking time")
    parser.add_argument("--log", default=os.devnull, help="where the app's log goes")
    parser.add_argument("--no-relay", action="store_true", help="skip the Media Streams run")
    parser.add_argument("--no-tools", action="store_true", help="speech turns only, no tool calls")
    parser.add_argument("--profile", help="py-spy raw profile of the app over the window")
    parser.add_argument("--cprofile", help="run the app under cProfile, stats to this file")
    args = parser.parse_args()
    if args.cprofile:
        args.cprofile = os.path.abspath(args.cprofile)  # the app runs in a temporary folder
    sip = asyncio.run(main_async(args))
    print(json.dumps({"sip": sip}))
    print(
        f"SIP: {sip['calls']} calls, {sip['accepted']} accepted: app CPU "
        f"{sip['cpu_per_call_pct_of_core']}% of a core per call "
        f"({sip['cpu_per_call_net_pct_of_core']}% net of the idle app's own "
        f"{sip['app_cpu_idle_cores']} core; "
        f"{sip['tool_calls_per_call_minute']} tool calls per call-minute, "
        f"{sip['sideband_client_events_per_call_second']} sideband events sent per "
        f"call-second); webhook→accept p50 {sip['webhook_to_accept_ms']['p50']} / p99 "
        f"{sip['webhook_to_accept_ms']['p99']} ms; machine idle {sip['machine_idle_pct']}%"
    )
    if not args.no_relay:
        relay = run_relay(args.calls, args.seconds, args.idle_seconds)
        print(json.dumps({"relay": relay}))
        relay_pct = float(relay["cpu_per_call_pct_of_core"])  # type: ignore[arg-type]
        sip_pct = float(sip["cpu_per_call_pct_of_core"])  # type: ignore[arg-type]
        ratio = relay_pct / sip_pct if sip_pct > 0 else float("inf")
        relay_net = float(relay["cpu_per_call_net_pct_of_core"])  # type: ignore[arg-type]
        sip_net = float(sip["cpu_per_call_net_pct_of_core"])  # type: ignore[arg-type]
        net_ratio = relay_net / sip_net if sip_net > 0 else float("inf")
        print(
            f"Media Streams bridge, same run: {relay_pct}% of a core per call "
            f"(machine idle {relay['machine_idle_pct']}%); SIP uses {ratio:.1f}x less CPU per "
            f"call; net of each idle app's own timers: bridge {relay_net}%, SIP {sip_net}%, "
            f"{net_ratio:.1f}x"
        )
    extra = " --no-tools" if args.no_tools else ""
    extra += " --no-relay" if args.no_relay else ""
    print(
        f"reproduce: python benchmarks/sip_control.py --calls {args.calls} "
        f"--seconds {args.seconds:g}{extra}"
    )


if __name__ == "__main__":
    main()
