"""FastAPI dependencies shared by the routers: the services, the voice runtime, and the
webhook form of a signed Twilio request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from voice_agent.services import Services
from voice_agent.voice.session import VoiceRuntime
from voice_agent.web.twilio_security import verified_form


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_voice_runtime(connection: HTTPConnection) -> VoiceRuntime:
    """The per-process voice runtime (for HTTP routes and websockets alike)."""
    return connection.app.state.voice


async def twilio_form(request: Request) -> dict[str, str]:
    """The webhook's form fields once the Twilio signature checked out (403 otherwise)."""
    return await verified_form(request, request.app.state.settings)


ServicesDep = Annotated[Services, Depends(get_services)]
VoiceRuntimeDep = Annotated[VoiceRuntime, Depends(get_voice_runtime)]
TwilioForm = Annotated[dict[str, str], Depends(twilio_form)]
