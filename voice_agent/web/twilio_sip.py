"""``POST /twilio/sip-dial-done``: the ``<Dial action>`` of a call we sent to OpenAI over SIP.

Twilio asks it when the SIP leg ends. Routing only (``voice/sip/transport.py`` decides): the
receptionist's decision stored on the call (hang up, transfer with the whispered summary, the
no-AI line) is carried out as after a media stream; a SIP leg OpenAI never took (486 at our
capacity, refused, unreachable) falls back to the Media Streams bridge; a leg that just ended
hangs up.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from voice_agent.logging_setup import current_call
from voice_agent.voice.webhooks import after_sip_dial_twiml
from voice_agent.web.deps import TwilioForm, VoiceRuntimeDep
from voice_agent.web.twilio_security import call_sid_of, public_base, stream_url

router = APIRouter(prefix="/twilio")


@router.post("/sip-dial-done")
async def sip_dial_done(request: Request, runtime: VoiceRuntimeDep, params: TwilioForm) -> Response:
    call_sid = call_sid_of(params)
    current_call.set(call_sid)
    settings = runtime.services.settings
    twiml = await after_sip_dial_twiml(
        runtime,
        call_sid,
        params.get("DialCallStatus", ""),
        base=public_base(settings, request.headers, request.url.scheme, request.url.netloc),
        stream_url=stream_url(settings, request, "/twilio/media-stream"),
    )
    return Response(twiml, media_type="application/xml")
