"""Relay benchmark: N concurrent phone calls through the real app (uvicorn, its own process).

The load process plays both peers: N Twilio media-stream clients (50 frames/s each, real time)
and a minimal OpenAI Realtime peer that streams 20 ms audio deltas back for the whole call.
Every 160-byte frame carries its sequence number, so each side timestamps the frames the other
side sent (CLOCK_MONOTONIC is shared by processes on one machine):

- inbound latency: Twilio client send → Realtime peer receive (app relays caller audio)
- outbound latency: Realtime peer send → Twilio client receive (app relays assistant audio)
- barge-in: the peer sends ``input_audio_buffer.speech_started``; time until the client gets
  ``clear`` (clients hold their marks, so the app always has unplayed audio to clear)
- CPU per call and memory per call of the app process, from /proc, over the steady window.

The peers here do no validation (the tests do); they only measure.
Reproduce:  python benchmarks/relay.py --calls 100 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AUTH_TOKEN = "bench-twilio-token"
PUBLIC = "https://bench.example"
FRAME = 160
BURST = 1.5  # assistant audio arrives 1.5x faster than it plays
TICKS = os.sysconf("SC_CLK_TCK")


def frame(seq: int) -> str:
    """A 160-byte frame carrying its sequence number and send time (CLOCK_MONOTONIC)."""
    head = struct.pack(">Qd", seq, time.monotonic())
    return base64.b64encode(head + b"\xff" * (FRAME - len(head))).decode()


def sent_at(payload_b64: str) -> float:
    return float(struct.unpack(">Qd", base64.b64decode(payload_b64[:24])[:16])[1])


def payload_of(message: str) -> str:
    start = (
        message.index('"payload":"') + 11
        if '"payload":"' in message
        else (message.index('"audio":"') + 9)
    )
    return message[start : message.index('"', start)]


class Stats:
    def __init__(self) -> None:
        self.inbound: list[float] = []
        self.outbound: list[float] = []
        self.barge_sent: dict[int, list[float]] = {}
        self.clears: dict[int, list[float]] = {}
        self.measure_from = float("inf")
        self.measure_until = float("inf")

    def measuring(self, now: float) -> bool:
        return self.measure_from <= now <= self.measure_until


class RealtimePeer:
    """Streams 20 ms deltas to each connected call and timestamps caller audio it receives."""

    def __init__(self, stats: Stats, seconds: float, barge_every: float) -> None:
        self.stats = stats
        self.seconds = seconds
        self.barge_every = barge_every
        self.calls = 0

    async def handle(self, ws: ServerConnection) -> None:
        call = self.calls
        self.calls += 1
        await ws.send(json.dumps({"type": "session.created", "event_id": "e", "session": {}}))
        streaming: asyncio.Task[None] | None = None
        try:
            async for message in ws:
                event = json.loads(message)
                kind = event["type"]
                if kind == "input_audio_buffer.append":
                    received = time.monotonic()
                    if self.stats.measuring(received):
                        self.stats.inbound.append(received - sent_at(event["audio"]))
                elif kind == "session.update":
                    await ws.send(json.dumps({"type": "session.updated", "session": {}}))
                elif kind == "response.create" and streaming is None:
                    streaming = asyncio.create_task(self.stream(ws, call))
        finally:
            if streaming:
                streaming.cancel()

    async def stream(self, ws: ServerConnection, call: int) -> None:
        item = f"item_{call}_{{}}"
        items = 0
        await ws.send(
            json.dumps(
                {"type": "response.created", "response": {"id": f"r{call}", "metadata": None}}
            )
        )
        started = time.monotonic()
        next_barge = started + self.barge_every
        seq = 0
        while True:
            now = time.monotonic()
            if now >= next_barge:
                next_barge += self.barge_every
                self.stats.barge_sent.setdefault(call, []).append(time.monotonic())
                await ws.send(
                    json.dumps(
                        {
                            "type": "input_audio_buffer.speech_started",
                            "audio_start_ms": 0,
                            "item_id": f"in{seq}",
                        }
                    )
                )
                items += 1
            await ws.send(
                '{"type":"response.output_audio.delta","response_id":"r%d","item_id":"%s",'
                '"output_index":0,"content_index":0,"delta":"%s"}'
                % (call, item.format(items), frame(seq))
            )
            seq += 1
            # Bursts faster than real time, as the Realtime API does, so the caller's side
            # always has audio queued that a barge-in must clear.
            await asyncio.sleep(max(0.0, started + seq * 0.02 / BURST - time.monotonic()))


async def twilio_client(port: int, call: int, stats: Stats, seconds: float) -> None:
    call_sid = f"CA{call:032d}"
    params = {"CallSid": call_sid, "From": f"+5511987{call:06d}", "To": "+551134567800"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/voice", params)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/twilio/voice",
            data=params,
            headers={"X-Twilio-Signature": signature},
            timeout=30,
        )
    token = response.text.split('name="token" value="')[1].split('"')[0]
    headers = {
        "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(
            "wss://bench.example/twilio/media-stream", {}
        )
    }
    async with connect(
        f"ws://127.0.0.1:{port}/twilio/media-stream",
        additional_headers=headers,
        max_size=2**22,
        compression=None,
    ) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(
            json.dumps(
                {
                    "event": "start",
                    "sequenceNumber": "1",
                    "streamSid": f"MZ{call}",
                    "start": {
                        "accountSid": "AC1",
                        "streamSid": f"MZ{call}",
                        "callSid": call_sid,
                        "tracks": ["inbound"],
                        "customParameters": {"token": token},
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                    },
                }
            )
        )

        # Like Twilio: audio plays at 8000 bytes/s; a mark is echoed once the audio queued
        # before it has played; clear drops the queue and echoes pending marks at once.
        marks: list[tuple[float, str]] = []
        play_until = time.monotonic()

        async def echo(name: str) -> None:
            await ws.send(
                '{"event":"mark","sequenceNumber":"0","streamSid":"MZ%d",'
                '"mark":{"name":"%s"}}' % (call, name)
            )

        async def receive() -> None:
            nonlocal play_until
            async for message in ws:
                now = time.monotonic()
                while marks and marks[0][0] <= now:
                    await echo(marks.pop(0)[1])
                if '"clear"' in message[:40]:
                    stats.clears.setdefault(call, []).append(now)
                    play_until = now
                    while marks:
                        await echo(marks.pop(0)[1])
                    continue
                if message.startswith('{"event":"media"'):
                    if stats.measuring(now):
                        stats.outbound.append(now - sent_at(payload_of(message)))
                    play_until = max(play_until, now) + 0.02
                elif message.startswith('{"event":"mark"'):
                    name = message[message.index('"name":"') + 8 :].split('"', 1)[0]
                    marks.append((play_until, name))

        receiver = asyncio.create_task(receive())
        started = time.monotonic()
        seq = 0
        while time.monotonic() - started < seconds:
            await ws.send(
                '{"event":"media","sequenceNumber":"%d","streamSid":"MZ%d","media":'
                '{"track":"inbound","chunk":"%d","timestamp":"%d","payload":"%s"}}'
                % (seq + 2, call, seq + 1, seq * 20, frame(seq))
            )
            seq += 1
            await asyncio.sleep(max(0.0, started + seq * 0.02 - time.monotonic()))
        await ws.send(
            json.dumps(
                {
                    "event": "stop",
                    "sequenceNumber": str(seq + 2),
                    "streamSid": f"MZ{call}",
                    "stop": {"accountSid": "AC1", "callSid": call_sid},
                }
            )
        )
        receiver.cancel()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_peer(
    port: int,
    window: tuple[float, float],
    seconds: float,
    barge_every: float,
    results: multiprocessing.Queue,
) -> None:  # type: ignore[type-arg]
    """The Realtime peer in its own process, so neither load side starves the other."""
    stats = Stats()
    stats.measure_from, stats.measure_until = window
    peer = RealtimePeer(stats, seconds, barge_every)

    async def serve_for() -> None:
        async with serve(peer.handle, "127.0.0.1", port, max_size=2**22, compression=None):
            await asyncio.sleep(seconds + 15)

    asyncio.run(serve_for())
    results.put((stats.inbound, stats.barge_sent))


def barge_latencies(
    sent: dict[int, list[float]], clears: dict[int, list[float]], window: tuple[float, float]
) -> list[float]:
    """Pair each speech start in the window with the first clear that followed it."""
    latencies = []
    for call, starts in sent.items():
        received = sorted(clears.get(call, []))
        for started in starts:
            if not window[0] <= started <= window[1]:
                continue
            after = next((c for c in received if c >= started), None)
            if after is not None and after - started < 2.0:
                latencies.append(after - started)
    return latencies


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    stats = Stats()
    peer_port = free_port()
    app_port = free_port()
    ramp = min(5.0, args.seconds / 4)
    with tempfile.TemporaryDirectory() as folder, open(args.log, "w") as log:
        env = {
            **os.environ,
            "VOICE_AGENT_DATABASE_URL": f"sqlite:///{folder}/relay.db",
            "VOICE_AGENT_PUBLIC_URL": PUBLIC,
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "VOICE_AGENT_TWILIO_API_BASE": "http://127.0.0.1:9",
            "OPENAI_API_KEY": "bench",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{peer_port}/v1",
            "VOICE_AGENT_IDLE_TIMEOUT_SECONDS": "600",
            "VOICE_AGENT_MAX_CALL_SECONDS": "3600",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        app = subprocess.Popen(
            [sys.executable, "-m", "voice_agent", "serve", "--port", str(app_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=folder,
        )
        try:
            for _ in range(200):
                try:
                    httpx.get(f"http://127.0.0.1:{app_port}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            idle_rss = rss_mb(app.pid)
            launch = time.monotonic()
            window = (launch + ramp + 1.0, launch + ramp + 1.0 + args.seconds / 2)
            stats.measure_from, stats.measure_until = window
            results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
            peer = multiprocessing.Process(
                target=run_peer,
                args=(peer_port, window, args.seconds, args.barge_every, results),
            )
            peer.start()
            await asyncio.sleep(1.0)
            calls = [
                asyncio.create_task(twilio_client(app_port, i, stats, args.seconds))
                for i in range(args.calls)
            ]
            own0 = time.process_time()
            await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
            cpu0, t0 = cpu_seconds(app.pid), time.monotonic()
            await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
            cpu1, t1 = cpu_seconds(app.pid), time.monotonic()
            own1 = time.process_time()
            busy_rss = rss_mb(app.pid)
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            failures = [repr(r) for r in outcomes if isinstance(r, BaseException)]
            inbound, barge_sent = await asyncio.to_thread(results.get, True, args.seconds + 60)
            peer.join(30)
        finally:
            app.terminate()
            try:
                app.wait(10)
            except subprocess.TimeoutExpired:
                app.kill()
    core_share = (cpu1 - cpu0) / (t1 - t0)
    barge = barge_latencies(barge_sent, stats.clears, window)
    return {
        "calls": args.calls,
        "failed_calls": len(failures),
        "first_failure": failures[0] if failures else None,
        "frames_measured": {"inbound": len(inbound), "outbound": len(stats.outbound)},
        "inbound_ms": {"p50": round(pct(inbound, 0.5), 2), "p99": round(pct(inbound, 0.99), 2)},
        "outbound_ms": {
            "p50": round(pct(stats.outbound, 0.5), 2),
            "p99": round(pct(stats.outbound, 0.99), 2),
        },
        "speech_start_to_clear_ms": {
            "p50": round(pct(barge, 0.5), 2),
            "p99": round(pct(barge, 0.99), 2),
            "samples": len(barge),
        },
        "app_cpu_cores": round(core_share, 3),
        "cpu_per_call_pct_of_core": round(100 * core_share / args.calls, 3),
        "memory_per_call_mb": round((busy_rss - idle_rss) / args.calls, 3),
        "app_rss_mb": {"idle": round(idle_rss, 1), "busy": round(busy_rss, 1)},
        "twilio_side_load_cpu_cores": round((own1 - own0) / (t1 - t0), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--barge-every", type=float, default=2.0)
    parser.add_argument("--log", default=os.devnull, help="where the app's log goes")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result))
    print(
        f"{result['calls']} calls: inbound p50 {result['inbound_ms']['p50']} ms / p99 "
        f"{result['inbound_ms']['p99']} ms; outbound p50 {result['outbound_ms']['p50']} ms / "
        f"p99 {result['outbound_ms']['p99']} ms; speech-start→clear p50 "
        f"{result['speech_start_to_clear_ms']['p50']} ms / p99 "
        f"{result['speech_start_to_clear_ms']['p99']} ms; app CPU "
        f"{result['cpu_per_call_pct_of_core']}% of a core per call; "
        f"{result['memory_per_call_mb']} MB per call"
    )
    print(f"reproduce: python benchmarks/relay.py --calls {args.calls} --seconds {args.seconds:g}")


if __name__ == "__main__":
    main()
