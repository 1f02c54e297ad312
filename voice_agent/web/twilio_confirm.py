"""Twilio routes of confirmation calls: answer, answering-machine result, call status, and the
no-AI keypad path (``<Gather input="dtmf speech">``) that works with Twilio alone. Routing only:
what each answer says is decided in ``voice/confirmation_call.py``.

``/answer``, ``/amd`` and ``/status`` carry the step id in the query string (Twilio signs the
full URL, query included); the keypad routes find the step by CallSid.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from voice_agent.confirmations.runner import ConfirmationRunner
from voice_agent.logging_setup import current_call
from voice_agent.voice import confirmation_call
from voice_agent.web.chat import get_conversations
from voice_agent.web.deps import TwilioForm, VoiceRuntimeDep
from voice_agent.web.replay import once, turn_number
from voice_agent.web.twilio_gather import silences_so_far
from voice_agent.web.twilio_security import public_base, stream_url

logger = logging.getLogger(__name__)
_STEP = re.compile(r"[0-9]{1,9}")
router = APIRouter(prefix="/twilio/confirm")
XML = "application/xml"


def _xml(body: str) -> Response:
    return Response(body, media_type=XML)


def _runner(request: Request) -> ConfirmationRunner:
    return request.app.state.confirmations


def _step_id(request: Request) -> int:
    """``?step=N``: a database id, so at most 9 digits (20 would overflow the column)."""
    raw = request.query_params.get("step", "")
    if not _STEP.fullmatch(raw):
        raise HTTPException(400, "missing or malformed step")
    return int(raw)


async def _params(request: Request, params: TwilioForm) -> tuple[dict[str, str], str, str]:
    """The signed form, its CallSid (400 if not a call) and our public base URL."""
    settings = request.app.state.settings
    call_sid = params.get("CallSid", "")
    if not call_sid.startswith("CA"):
        raise HTTPException(400, "not a call")
    current_call.set(call_sid)
    base = public_base(settings, request.headers, request.url.scheme, request.url.netloc)
    return params, call_sid, base


ConfirmCall = Annotated[tuple[dict[str, str], str, str], Depends(_params)]


@router.post("/answer")
async def answer(request: Request, runtime: VoiceRuntimeDep, call: ConfirmCall) -> Response:
    """The patient's phone was answered: the Realtime receptionist in confirmation mode, or the
    keypad path when OpenAI is not configured (a failing Realtime session falls back to it)."""
    params, call_sid, base = call
    twiml = await confirmation_call.answer_twiml(
        runtime,
        _runner(request),
        _step_id(request),
        call_sid,
        params,
        base=base,
        stream_url=stream_url(runtime.services.settings, request, "/twilio/media-stream"),
    )
    return _xml(twiml)


@router.post("/amd")
async def answering_machine(request: Request, call: ConfirmCall) -> Response:
    params, call_sid, _ = call
    await _runner(request).machine_detected(
        _step_id(request), call_sid, params.get("AnsweredBy", "unknown")
    )
    return Response(status_code=204)


@router.post("/status")
async def call_status(request: Request, call: ConfirmCall) -> Response:
    params, call_sid, _ = call
    await _runner(request).call_status(_step_id(request), call_sid, params.get("CallStatus", ""))
    return Response(status_code=204)


# The keypad path ------------------------------------------------------------------------------


@router.post("/keypad")
async def keypad(request: Request, call: ConfirmCall) -> Response:
    """Start (or resume after a failed Realtime session) the keypad confirmation."""
    _, call_sid, base = call
    return _xml(await confirmation_call.keypad_twiml(_runner(request), call_sid, base))


@router.post("/gather")
async def gather(request: Request, call: ConfirmCall) -> Response:
    """One keypad (or spoken) answer: 1 confirm, 2 cancel, 3 staff; each turn processed once."""
    params, call_sid, base = call
    number = turn_number(request)
    if number is None:  # an action URL from before turns were numbered
        return await _gather(request, params, call_sid, base, 1)
    return await once(
        request,
        f"confirm:{call_sid}:{number}",
        lambda: _gather(request, params, call_sid, base, number + 1),
    )


async def _gather(
    request: Request, params: dict[str, str], call_sid: str, base: str, next_turn: int
) -> Response:
    twiml = await confirmation_call.answer_turn_twiml(
        _runner(request),
        get_conversations(request),
        params,
        call_sid,
        base,
        next_turn,
        silences=silences_so_far(request),
    )
    return _xml(twiml)
