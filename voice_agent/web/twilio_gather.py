"""Twilio routes of the no-AI phone receptionist: ``/twilio/gather/start`` and ``/turn``.
Routing only: the signature check and once-per-turn here, the answers in ``voice/keypad.py``.

The voice webhook hands a call over (OpenAI not configured, or the Realtime session cannot be
opened) by answering ``voice.twilio.gather.redirect_twiml(f"{base}/twilio/gather/start")``;
Twilio then posts the call's parameters here, and every later turn comes back to ``/turn``.

Each turn's action URL carries its number (``/turn?turn=3``; Twilio signs the query too), and a
turn is processed once per call: Twilio's retry or a replayed capture of turn 3 gets the TwiML
turn 3 answered, and books, moves or cancels nothing again.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from voice_agent.logging_setup import current_call
from voice_agent.voice import keypad
from voice_agent.web.chat import get_conversations
from voice_agent.web.deps import TwilioForm
from voice_agent.web.replay import once, turn_number
from voice_agent.web.twilio_security import public_base

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio/gather")
XML = "application/xml"


def _xml(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=XML)


async def _call(request: Request, params: TwilioForm) -> tuple[dict[str, str], str | None, str]:
    """The signed form, the caller's number (None if withheld) and our public base URL."""
    settings = request.app.state.settings
    call_sid = params.get("CallSid", "")
    if not call_sid.startswith("CA"):
        raise HTTPException(400, "not a call")
    current_call.set(call_sid)
    phone = keypad.caller_phone(request.app.state.services, params.get("From", ""))
    base = public_base(settings, request.headers, request.url.scheme, request.url.netloc)
    return params, phone, base


GatherCall = Annotated[tuple[dict[str, str], str | None, str], Depends(_call)]


@router.post("/start")
async def start(request: Request, call: GatherCall) -> Response:
    """Greet the caller in their language (known patient) or the clinic's, and listen."""
    _, phone, base = call
    return _xml(await keypad.welcome_twiml(get_conversations(request), phone, base))


@router.post("/turn")
async def turn(request: Request, call: GatherCall) -> Response:
    """One spoken (or keyed) answer through the offline receptionist, processed once."""
    params, phone, base = call
    number = turn_number(request)
    if number is None:  # an action URL from before turns were numbered (none is issued now)
        return await _turn(request, params, phone, base, 1)
    return await once(
        request,
        f"gather:{params['CallSid']}:{number}",
        lambda: _turn(request, params, phone, base, number + 1),
    )


async def _turn(
    request: Request, params: dict[str, str], phone: str | None, base: str, next_number: int
) -> Response:
    twiml = await keypad.turn_twiml(
        get_conversations(request),
        params,
        phone,
        base,
        next_number,
        silences=silences_so_far(request),
        emergency_offered=bool(request.query_params.get("emergency")),
    )
    return _xml(twiml)


def silences_so_far(request: Request) -> int:
    """How many silent turns in a row (``?silences=N`` on the action URL), bounded."""
    try:
        return max(0, min(10, int(request.query_params.get("silences") or 0)))
    except ValueError:
        return 0
