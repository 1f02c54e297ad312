"""The real app (uvicorn) with the fake OpenAI SIP project, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from sqlalchemy import Engine, select

from tests.conftest import make_settings
from tests.e2e.harness import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, LiveApp
from tests.fakes.openai_sip import CallerHangsUp, CallerPresses, FakeOpenAISip
from tests.fakes.realtime_script import Step
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import Clock
from voice_agent.services import build_services
from voice_agent.store.db import transaction
from voice_agent.store.tables import CallEvent, CallRecord

SIP_URI = "sip:proj_test0000000000000000@sip.api.openai.com;transport=tls"
CALLER = "+5511987654321"
CLINIC_NUMBER = "+551134567800"


@dataclass
class SipApp(LiveApp):
    fake: FakeOpenAISip

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/openai/webhook"

    def record(self, call_sid: str) -> CallRecord | None:
        with transaction(self.services.engine) as session:
            return session.get(CallRecord, call_sid)

    def events(self, call_sid: str) -> list[CallEvent]:
        with transaction(self.services.engine) as session:
            rows = session.execute(
                select(CallEvent).where(CallEvent.call_sid == call_sid).order_by(CallEvent.seq)
            )
            return list(rows.scalars())

    async def call_ended(self, call_id: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Wait until the app's session of this call has finished (its record is closed)."""
        runtime = self.services_app_state_sip
        task = runtime.sessions.get(call_id)
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), timeout)

    services_app_state_sip: Any = None


def trunk_headers(caller: str = CALLER, dialled: str = CLINIC_NUMBER) -> list[tuple[str, str]]:
    """An INVITE straight from a Twilio Elastic SIP trunk."""
    return [
        ("From", f"<sip:{caller}@voiceagent.pstn.twilio.com>;tag=73913"),
        ("To", f"<sip:{dialled}@sip.api.openai.com>"),
        ("Call-ID", "0b8f3c1a@10.0.0.1"),
    ]


@asynccontextmanager
async def live_sip(
    engine: Engine,
    clock: Clock,
    script: Sequence[Step | CallerPresses | CallerHangsUp],
    **overrides: Any,
) -> AsyncIterator[SipApp]:
    # A spoken filler only where a test asks for one: on a loaded machine a tool may pass the
    # 1 s default, and the fake's script would give its next line to the filler.
    overrides.setdefault("tool_filler_after_seconds", 30.0)
    fake_options = {k: overrides.pop(k) for k in ("audio_pace", "keep_history") if k in overrides}
    caller_pause = overrides.pop("caller_pause", None)
    async with FakeOpenAISip(script, **fake_options) as fake:
        if caller_pause is not None:
            fake.realtime.caller_pause = caller_pause
        settings = make_settings(
            str(engine.url),
            public_url=PUBLIC_URL,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            twilio_api_base=overrides.pop("twilio_api_base", "http://127.0.0.1:9"),
            openai_api_key="test",
            openai_base_url=fake.base_url,
            openai_websocket_base_url=fake.websocket_base_url,
            openai_webhook_secret=fake.webhook_secret,
            openai_sip_uri=SIP_URI,
            **overrides,
        )
        services = build_services(settings, clock=clock, alerter=ConsoleAlerter(), engine=engine)
        app = create_app(settings, services)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        live = SipApp(services, port, app.state.voice, fake)
        live.services_app_state_sip = app.state.sip
        try:
            yield live
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 15)
