"""Issue 12's attacks on the media stream, kept as tests: junk frames from an authorised
stream, frames before ``start``, and sockets declaring 1 GiB frames while calls run (the app
in its own process, its memory measured)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.harness import live_app, live_call
from tests.e2e.test_voice_call import CALL_SID, call_events, call_record
from tests.e2e.ws_wire import Outcome, close_quietly, frame, open_raw_client, read_until_close
from tests.fakes.realtime_script import SpeakTurn, UserTurn
from tests.fakes.realtime_server import FakeRealtimeServer
from tests.fakes.twilio_media import TwilioMediaSimulator

ROOT = Path(__file__).resolve().parents[2]
JUNK = [
    "not json",
    '{"event":"unknown"}',
    '{"event":"media","media":{"payload":"%%%"}}',
    "[1,2]",
    '{"event":"media"}',
]


def app_log_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("voice_agent")]


async def test_a_stream_that_keeps_sending_junk_is_closed_with_few_log_lines_and_rows(
    tmp_path, clock, relay_fast_path, caplog
) -> None:
    caplog.set_level(logging.INFO)
    script = [SpeakTurn("Olá!", audio_ms=200), UserTurn("Alô"), SpeakTurn("Pois não", 200)]
    fast = relay_fast_path
    async with live_call(tmp_path, clock, script, relay_fast_path=fast) as (realtime, app):
        token = await app.incoming_call(CALL_SID)
        sim = TwilioMediaSimulator(
            app.media_url, call_sid=CALL_SID, custom_parameters={"token": token}, speed=0.05
        )
        await sim.connect()
        await sim.wait_idle(timeout=10)
        before = len(app_log_lines(caplog))
        sent = 0
        with contextlib.suppress(ConnectionClosed):  # the server closes; later sends fail
            while sent < 2000 and not sim.closed:
                await sim.send_raw(JUNK[sent % len(JUNK)])
                sent += 1
                if sent % 50 == 0:
                    await asyncio.sleep(0)
        code = await sim.wait_closed(timeout=10)
        await asyncio.sleep(0.3)  # the call record is closed after the socket
    assert code == 1008
    assert realtime.violations == []
    lines = app_log_lines(caplog)[before:]
    errors = [e for e in call_events(app) if e.kind == "error"]
    record = call_record(app)
    assert record.outcome == "failed"
    assert "bad frames" in (record.error or "")
    # The first five are reported, then one line (and one row) for the rest and one for the close.
    assert len([r for r in lines if "skipped a bad Twilio frame" in r.getMessage()]) == 5
    assert len(lines) <= 10, [r.getMessage() for r in lines]
    assert len(errors) <= 6
    closed_after = int(re.search(r"closed: (\d+) bad frames", record.error or "").group(1))
    assert closed_after < 200  # a burst of 50 (5 a second after that), not the 2000 sent
    print(f"junk frames read {closed_after}, log lines {len(lines)}, error rows {len(errors)}")


async def test_frames_before_start_are_capped(tmp_path, clock, relay_fast_path) -> None:
    async with (
        FakeRealtimeServer([SpeakTurn("Olá", audio_ms=200)]) as realtime,
        live_app(tmp_path, clock, realtime.base_url, relay_fast_path=relay_fast_path) as app,
    ):
        await app.incoming_call(CALL_SID)
        sim = TwilioMediaSimulator(app.media_url, call_sid=CALL_SID, auto_start=False)
        await sim.connect()
        for junk in JUNK[:4]:
            await sim.send_raw(junk)
        assert await sim.wait_closed(timeout=5) == 1008
        assert realtime.sessions == []


async def test_unsigned_upgrade_is_refused_before_any_frame(tmp_path, clock, relay_fast_path):
    async with live_app(tmp_path, clock, None, relay_fast_path=relay_fast_path) as app:
        reader, writer, status, rest = await open_raw_client(app.port, "/twilio/media-stream")
        # The 403 came before the app read a frame: what is sent now is never parsed.
        outcome = Outcome()
        try:
            writer.write(frame(0x1, b"", declared=1 << 30))
            await read_until_close(reader, bytearray(rest), outcome, masked=False, quiet=1.0)
        finally:
            await close_quietly(writer)
    assert status == 403
    assert outcome.messages == [] and outcome.ended in ("eof", "reset")


def test_frame_attack_leaves_app_memory_flat_and_calls_running() -> None:
    """Four sockets (two unsigned, two signed without a call token) declare 1 GiB frames and
    pour payload after them, reconnecting, for the whole window, while three calls run; the
    app is `voice-agent serve` in its own process (benchmarks/relay.py --attack). The stock
    protocol's refusal of the same frames is held by the differential test; ``--stock`` runs
    this attack against it by hand."""
    fast_path = True
    command = [
        sys.executable, str(ROOT / "benchmarks" / "relay.py"),
        "--calls", "3", "--seconds", "3", "--attack", "4",
        "--idle-seconds", "1",  # the idle CPU is not what this test holds (default 10 s)
    ]  # fmt: skip
    if not fast_path:
        command.append("--stock")
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.splitlines()[0])
    attack, rss = result["attack"], result["app_rss_mb"]
    assert result["fast_path"] is fast_path
    assert attack["refused_http"].get("403", 0) > 0  # unsigned: refused before the upgrade
    assert set(attack["closed_codes"]) == {"1009"}  # signed: refused at the frame header
    assert rss["peak"] - rss["idle"] < 40, rss  # was +2 GB with 4 sockets in 8 s
    assert result["calls_closed_early"] == []
    # Calls keep flowing (a loose bound: the 2-core machine is shared and the attack, the
    # load generator and the app all run on it).
    assert result["frames_measured"]["outbound"] > 3 * 3 * 50
    assert result["outbound_ms"]["p99"] < 250, result["outbound_ms"]
