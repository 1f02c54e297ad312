"""The real app served by uvicorn on a local port, for end-to-end tests with the local fakes."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from tests.fakes.realtime_script import Step
from tests.fakes.realtime_server import FakeRealtimeServer
from tests.migrated import migrated_sqlite
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import Clock
from voice_agent.services import Services, build_services
from voice_agent.store.db import make_engine
from voice_agent.voice.relay_sockets import uvicorn_websocket_options
from voice_agent.voice.session import VoiceRuntime

PUBLIC_URL = "https://clinic.example"
AUTH_TOKEN = "twilio-test-token"
ACCOUNT_SID = "AC00000000000000000000000000000001"
CALLER = "+5511987654321"


@dataclass
class LiveApp:
    services: Services
    port: int
    voice: VoiceRuntime
    """The app's voice channel (its tool registry, its Twilio client)."""

    @property
    def media_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/twilio/media-stream"

    async def post_twilio(self, path: str, params: dict[str, str]) -> httpx.Response:
        """POST a form the way Twilio does, signed for the public URL."""
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, params)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as client:
            return await client.post(path, data=params, headers={"X-Twilio-Signature": signature})

    async def incoming_call(self, call_sid: str, caller: str = CALLER) -> str:
        """Twilio's voice webhook for a new call; returns the stream token from the TwiML."""
        response = await self.post_twilio(
            "/twilio/voice",
            {
                "CallSid": call_sid,
                "From": caller,
                "To": "+551134567800",
                "AccountSid": ACCOUNT_SID,
                "Direction": "inbound",
            },
        )
        assert response.status_code == 200, response.text
        match = re.search(r'<Parameter name="token" value="([^"]+)"', response.text)
        assert match, response.text
        return match.group(1)


@asynccontextmanager
async def live_app(
    tmp_path: Path, clock: Clock, realtime_base_url: str | None, **overrides: Any
) -> AsyncIterator[LiveApp]:
    # A spoken filler only where a test asks for one: on a loaded machine a tool may pass the
    # 1 s default, and the fake's script would give its next line to the filler.
    overrides.setdefault("tool_filler_after_seconds", 30.0)
    settings = make_settings(
        migrated_sqlite(tmp_path / "live.db"),
        public_url=PUBLIC_URL,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_api_base=overrides.pop("twilio_api_base", "http://127.0.0.1:9"),
        openai_api_key="test" if realtime_base_url else None,
        openai_base_url=realtime_base_url,
        **overrides,
    )
    engine = make_engine(settings.database_url)
    services = build_services(settings, clock=clock, alerter=ConsoleAlerter(), engine=engine)
    app = create_app(settings, services)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        **uvicorn_websocket_options(settings.relay_fast_path),  # as `voice-agent serve`
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield LiveApp(services, port, app.state.voice)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        engine.dispose()


@asynccontextmanager
async def live_call(
    tmp_path: Path, clock: Clock, script: list[Step], **overrides: Any
) -> AsyncIterator[tuple[FakeRealtimeServer, LiveApp]]:
    """The fake Realtime server playing ``script`` and the app aimed at it (most call tests)."""
    async with (
        FakeRealtimeServer(script) as realtime,
        live_app(tmp_path, clock, realtime.base_url, **overrides) as app,
    ):
        yield realtime, app
