"""``POST /twilio/sip-dial-done``: the ``<Dial action>`` of a call we sent to OpenAI over SIP.

Twilio asks it when the SIP leg ends. Routing only: the receptionist's decision stored on the
call (hang up, transfer with the whispered summary, the no-AI line) is carried out as after a
media stream; a SIP leg OpenAI never took (486 at our capacity, refused, unreachable) falls
back to the Media Streams bridge with a fresh stream token; a leg that just ended hangs up.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response

from voice_agent.logging_setup import current_call
from voice_agent.voice.call_log import get_call, set_call_fields
from voice_agent.voice.sip.transport import FAILED_DIAL
from voice_agent.voice.twiml import hangup_twiml, stream_twiml
from voice_agent.web.twilio_security import call_sid_of, public_base, stream_url, verified_form
from voice_agent.web.twilio_voice import VoiceRuntime, after_stream

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio")
XML = "application/xml"


@router.post("/sip-dial-done")
async def sip_dial_done(request: Request) -> Response:
    runtime: VoiceRuntime = request.app.state.voice
    services = runtime.services
    settings = services.settings
    params = await verified_form(request, settings)
    call_sid = call_sid_of(params)
    current_call.set(call_sid)
    status = params.get("DialCallStatus", "")
    call = await asyncio.to_thread(get_call, services.engine, call_sid)
    if call is None:
        return Response(hangup_twiml(), media_type=XML)
    if call.next_action is not None:
        return await after_stream(request)  # the receptionist decided: as after a stream
    if status not in FAILED_DIAL:
        return Response(hangup_twiml(), media_type=XML)  # the SIP leg simply ended
    logger.warning("the SIP leg to OpenAI failed (%s): falling back", status)
    if call.mode != "reception" or runtime.connector is None:
        return await after_stream(request)  # the keypad or the no-AI line
    token, claims = runtime.tokens.mint(call_sid, services.clock.now())
    await asyncio.to_thread(
        set_call_fields, services.engine, call_sid, token_nonce=claims.nonce, token_used_at=None
    )
    base = public_base(settings, request.headers, request.url.scheme, request.url.netloc)
    twiml = stream_twiml(
        stream_url(settings, request, "/twilio/media-stream"),
        {"token": token},
        status_callback=f"{base}/twilio/stream-status",
        after_url=f"{base}/twilio/after-stream",
    )
    return Response(twiml, media_type=XML)
