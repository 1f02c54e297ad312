"""Twilio voice routes: the incoming-call webhook, the media-stream websocket, and the callbacks
after a stream. Routing only: the signature checks here, the call path in ``voice/``
(``voice/webhooks.py`` answers the webhooks, ``voice/session.py`` runs the stream).

Every HTTP callback is signature-checked; the websocket's upgrade is refused (HTTP 403) unless
its Twilio signature checks out, and the per-call token in ``start`` is checked before a single
byte of audio reaches OpenAI.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response, WebSocket

from voice_agent.logging_setup import current_call
from voice_agent.voice import webhooks
from voice_agent.voice.session import VoiceRuntime, serve_media_stream
from voice_agent.voice.twilio.twiml import say_twiml
from voice_agent.web.deps import TwilioForm, VoiceRuntimeDep
from voice_agent.web.twilio_security import (
    call_sid_of,
    public_base,
    stream_url,
    websocket_signature_ok,
)

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio")

POLICY_VIOLATION = 1008
XML = "application/xml"


def _xml(body: str, status: int = 200) -> Response:
    return Response(content=body, media_type=XML, status_code=status)


def _base(runtime: VoiceRuntime, request: Request) -> str:
    settings = runtime.services.settings
    return public_base(settings, request.headers, request.url.scheme, request.url.netloc)


@router.post("/voice")
async def incoming_call(request: Request, runtime: VoiceRuntimeDep, params: TwilioForm) -> Response:
    """Twilio's voice webhook: answer with a media stream, or the no-AI fallback."""
    call_sid = params.get("CallSid", "")
    if not call_sid.startswith("CA"):
        return _xml(say_twiml("Invalid request.", "en-US"), status=400)
    current_call.set(call_sid)
    twiml = await webhooks.answer_call(
        runtime,
        call_sid,
        params,
        base=_base(runtime, request),
        stream_url=stream_url(runtime.services.settings, request, "/twilio/media-stream"),
    )
    return _xml(twiml)


@router.post("/after-stream")
async def after_stream(request: Request, runtime: VoiceRuntimeDep, params: TwilioForm) -> Response:
    """The stream closed and the call is still up: do what the bridge decided."""
    call_sid = call_sid_of(params)
    current_call.set(call_sid)
    base = _base(runtime, request)
    return _xml(await webhooks.after_stream_twiml(runtime.services, call_sid, base=base))


@router.post("/whisper")
async def whisper(runtime: VoiceRuntimeDep, params: TwilioForm) -> Response:
    """Staff picked up a transfer: they hear the one-line summary before the caller joins."""
    parent = params.get("ParentCallSid") or call_sid_of(params)
    current_call.set(parent)
    return _xml(await webhooks.whisper_twiml(runtime.services, parent))


@router.post("/stream-status")
async def stream_status(runtime: VoiceRuntimeDep, params: TwilioForm) -> Response:
    call_sid = call_sid_of(params)
    current_call.set(call_sid)
    if params.get("StreamEvent", "") == "stream-error":
        await webhooks.stream_failed(runtime.services, call_sid, params.get("StreamError", ""))
    return Response(status_code=204)


@router.websocket("/media-stream")
async def media_stream(websocket: WebSocket, runtime: VoiceRuntimeDep) -> None:
    if not websocket_signature_ok(websocket, runtime.services.settings):
        # Refused before the upgrade (uvicorn answers HTTP 403): an unsigned socket never
        # gets to send a frame, so it costs no buffer and no parsing.
        logger.warning("media stream refused: bad or missing signature")
        await websocket.close(POLICY_VIOLATION)
        return
    await serve_media_stream(runtime, websocket)


__all__ = ["router"]
