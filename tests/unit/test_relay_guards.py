"""Pure parts of the relay's defences: the bad-frame budget of a Twilio stream, the frame
header reader both fast paths judge frames with, and the fast-path switch."""

from __future__ import annotations

from tests.e2e.ws_wire import frame
from voice_agent.settings import Settings
from voice_agent.voice.relay_sockets import (
    REALTIME_MAX_MESSAGE_BYTES,
    STOCK_WS_PROTOCOL,
    TWILIO_MAX_MESSAGE_BYTES,
    realtime_websocket_options,
    uvicorn_websocket_options,
)
from voice_agent.voice.relay_sockets.framing import frame_header
from voice_agent.voice.twilio.protocol import BadFrameGuard


def test_the_first_bad_frames_are_reported_then_counted_then_the_stream_is_closed() -> None:
    guard = BadFrameGuard(report_first=5, burst=50, per_second=5.0)
    verdicts = [guard.add("frame is not valid JSON", now=0.0) for _ in range(51)]
    assert verdicts[:5] == ["report"] * 5
    assert verdicts[5:50] == ["count"] * 45
    assert verdicts[50] == "close"
    assert guard.summary() == {"bad_frames": 51, "reasons": {"frame is not valid JSON": 51}}
    assert guard.unreported == 46


def test_a_few_unknown_frames_spread_over_a_long_call_never_close_it() -> None:
    guard = BadFrameGuard(report_first=5, burst=50, per_second=5.0)
    verdicts = [guard.add("unknown or missing event type", now=i * 0.5) for i in range(2000)]
    assert "close" not in verdicts  # two a second for 1000 s: under the refill rate
    assert verdicts.count("report") == 5


def test_a_sustained_flood_is_closed_even_when_paced() -> None:
    guard = BadFrameGuard(report_first=5, burst=50, per_second=5.0)
    verdicts = [guard.add("x", now=i * 0.05) for i in range(200)]  # 20 a second
    assert "close" in verdicts
    assert verdicts.index("close") < 80


def test_frame_header_is_known_before_the_payload() -> None:
    huge = frame(0x1, b"", declared=1 << 30)  # header and mask key only
    assert frame_header(huge, 0, len(huge)) == (14, 1 << 30)
    assert frame_header(huge, 0, 9) is None  # the 64-bit length not all in yet
    small = frame(0x1, b"hello", mask=False)
    assert frame_header(small, 0, 2) == (2, 5)
    medium = frame(0x1, b"m" * 300)
    assert frame_header(medium, 0, 8) == (8, 300)
    assert frame_header(medium, 0, 7) is None  # mask key incomplete


def test_the_fast_path_switch_picks_our_classes_or_the_stock_ones() -> None:
    fast, stock = Settings(relay_fast_path=True), Settings(relay_fast_path=False)
    assert fast.relay_fast_path and not stock.relay_fast_path
    server = uvicorn_websocket_options(stock.relay_fast_path)
    assert server["ws"] == STOCK_WS_PROTOCOL
    assert server["ws_max_size"] == TWILIO_MAX_MESSAGE_BYTES == 65536
    assert uvicorn_websocket_options(True)["ws"].endswith("server:RelayServerProtocol")
    client = realtime_websocket_options(False)
    assert "create_connection" not in client
    assert client["max_size"] == REALTIME_MAX_MESSAGE_BYTES
    assert realtime_websocket_options(True)["create_connection"].__name__ == (
        "RelayClientConnection"
    )


def test_the_setting_reads_its_environment_variable(monkeypatch) -> None:
    monkeypatch.setenv("VOICE_AGENT_RELAY_FAST_PATH", "false")
    assert Settings().relay_fast_path is False
