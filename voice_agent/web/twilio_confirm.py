"""Twilio routes of confirmation calls: answer, answering-machine result, call status, and the
no-AI keypad path (``<Gather input="dtmf speech">``) that works with Twilio alone.

``/answer``, ``/amd`` and ``/status`` carry the step id in the query string (Twilio signs the
full URL, query included); the keypad routes find the step by CallSid.
"""

from __future__ import annotations

import asyncio
import logging
import re

from fastapi import APIRouter, HTTPException, Request, Response

from voice_agent.confirmations.messages import DIGITS, Answer
from voice_agent.confirmations.runner import ConfirmationRunner, StepContext
from voice_agent.logging_setup import current_call
from voice_agent.store.confirmation_tables import StepStatus
from voice_agent.voice.call_records import open_call_record, stream_already_ran
from voice_agent.voice.session import VoiceRuntime
from voice_agent.voice.sip.transport import sip_answer_twiml
from voice_agent.voice.twilio.gather import (
    MAX_SILENCES,
    gather_twiml,
    goodbye_twiml,
    transfer_twiml,
)
from voice_agent.voice.twilio.twiml import hangup_twiml, stream_twiml
from voice_agent.web.replay import once, turn_number
from voice_agent.web.twilio_gather import red_flag_twiml, silences_so_far
from voice_agent.web.twilio_security import public_base, stream_url, verified_form

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


async def _params(request: Request) -> tuple[dict[str, str], str, str]:
    settings = request.app.state.settings
    params = await verified_form(request, settings)
    call_sid = params.get("CallSid", "")
    if not call_sid.startswith("CA"):
        raise HTTPException(400, "not a call")
    current_call.set(call_sid)
    base = public_base(settings, request.headers, request.url.scheme, request.url.netloc)
    return params, call_sid, base


@router.post("/answer")
async def answer(request: Request) -> Response:
    """The patient's phone was answered: the Realtime receptionist in confirmation mode, or the
    keypad path when OpenAI is not configured (a failing Realtime session falls back to it)."""
    params, call_sid, base = await _params(request)
    runner = _runner(request)
    step_id = _step_id(request)
    runtime: VoiceRuntime = request.app.state.voice
    if await asyncio.to_thread(stream_already_ran, runtime.services.engine, call_sid):
        logger.warning("answer callback repeated after the call's stream ran: no new token")
        return _xml(hangup_twiml())
    context = await runner.call_answered(step_id, call_sid)
    if context is None:
        return _xml(await _already_settled(runner, step_id, call_sid))
    services = runtime.services
    nonce, token = None, None
    if runtime.connector is not None:
        token, claims = runtime.tokens.mint(call_sid, services.clock.now())
        nonce = claims.nonce
    await asyncio.to_thread(
        open_call_record,
        services.engine,
        call_sid,
        context.patient.phone,
        context.patient,
        context.language,
        nonce,
        params.get("Direction", "outbound-api"),
        appointment_id=context.appointment.id,
    )
    if token is None:
        return _xml(_keypad_prompt(context, base))
    sip = sip_answer_twiml(
        services.settings,
        services.clinic(),
        call_sid=call_sid,
        token=token,
        base=base,
        dialled=params.get("From"),  # the clinic's number placed this call
        appointment_id=context.appointment.id,
    )
    if sip is not None:  # the clinic's number is on the openai_sip transport (docs/sip.md)
        return _xml(sip)
    return _xml(
        stream_twiml(
            stream_url(services.settings, request, "/twilio/media-stream"),
            {"token": token},
            status_callback=f"{base}/twilio/stream-status",
            after_url=f"{base}/twilio/after-stream",
        )
    )


async def _already_settled(runner: ConfirmationRunner, step_id: int, call_sid: str) -> str:
    """The patient confirmed (say, on WhatsApp) while the phone rang: thank them, hang up."""
    step = await asyncio.to_thread(runner.store.get, step_id)
    if step is None or step.call_sid != call_sid or step.outcome != "confirmed":
        return hangup_twiml()
    context = await asyncio.to_thread(runner.context_for, step.appointment_id)
    if context is None:
        return hangup_twiml()
    return goodbye_twiml(context.texts.get("gather_confirmed"), context.language)


@router.post("/amd")
async def answering_machine(request: Request) -> Response:
    params, call_sid, _ = await _params(request)
    await _runner(request).machine_detected(
        _step_id(request), call_sid, params.get("AnsweredBy", "unknown")
    )
    return Response(status_code=204)


@router.post("/status")
async def call_status(request: Request) -> Response:
    params, call_sid, _ = await _params(request)
    await _runner(request).call_status(_step_id(request), call_sid, params.get("CallStatus", ""))
    return Response(status_code=204)


# The keypad path ------------------------------------------------------------------------------


def _gather_url(base: str, turn: int) -> str:
    """Each keypad answer's URL carries its number, so a repeated answer is answered once."""
    return f"{base}/twilio/confirm/gather?turn={turn}"


def _keypad_prompt(context: StepContext, base: str, key: str = "gather_prompt") -> str:
    return gather_twiml(
        context.texts.get(key, **context.values), context.language, _gather_url(base, 1)
    )


async def _call_context(
    runner: ConfirmationRunner, call_sid: str
) -> tuple[int, StepContext] | None:
    step = await asyncio.to_thread(runner.store.by_call, call_sid)
    if step is None or step.id is None:
        return None
    context = await asyncio.to_thread(runner.context_for, step.appointment_id)
    if context is None:
        return None
    return step.id, context


@router.post("/keypad")
async def keypad(request: Request) -> Response:
    """Start (or resume after a failed Realtime session) the keypad confirmation."""
    _, call_sid, base = await _params(request)
    found = await _call_context(_runner(request), call_sid)
    if found is None:
        return _xml(hangup_twiml())
    return _xml(_keypad_prompt(found[1], base))


@router.post("/gather")
async def gather(request: Request) -> Response:
    """One keypad (or spoken) answer: 1 confirm, 2 cancel, 3 staff; each turn processed once."""
    params, call_sid, base = await _params(request)
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
    runner = _runner(request)
    found = await _call_context(runner, call_sid)
    if found is None:
        return _xml(hangup_twiml())
    step_id, context = found
    texts, language = context.texts, context.language
    digits = params.get("Digits", "").strip().rstrip("#")
    speech = params.get("SpeechResult", "").strip()
    if not digits and not speech:
        silences = silences_so_far(request) + 1
        if silences > MAX_SILENCES:
            return _xml(goodbye_twiml(texts.get("gather_goodbye"), language))
        return _xml(
            gather_twiml(
                texts.get("gather_reask"),
                language,
                _gather_url(base, next_turn),
                silences=silences,
            )
        )
    if speech:  # safety first: an emergency is never read as 1, 2 or 3
        emergency = await red_flag_twiml(
            request, call_sid, context.patient.phone, speech, language, base
        )
        if emergency is not None:
            return _xml(emergency)
    answer = DIGITS.get(digits) if digits else texts.read_answer(speech)
    if answer in (Answer.confirm, Answer.cancel):
        key = await runner.apply_answer(context, answer, channel="voice", call_id=call_sid)
        if key in ("confirmed", "cancelled"):
            return _xml(goodbye_twiml(texts.get(f"gather_{key}"), language))
        # The booking refused (too late to cancel …): say why and put them through to staff.
        return _xml(
            await _to_staff(runner, context, call_sid, step_id, texts.get(key, **context.values))
        )
    if answer == Answer.change:
        return _xml(await _to_staff(runner, context, call_sid, step_id, ""))
    return _xml(gather_twiml(texts.get("gather_reask"), language, _gather_url(base, next_turn)))


async def _to_staff(
    runner: ConfirmationRunner, context: StepContext, call_sid: str, step_id: int, before: str
) -> str:
    await asyncio.to_thread(
        runner.store.update_call,
        step_id,
        call_sid,
        runner.services.clock.now(),
        status=StepStatus.done,
        outcome="transferred",
    )
    clinic = context.clinic
    text = (before + "\n" if before else "") + context.texts.get("gather_transfer")
    return transfer_twiml(text, context.language, clinic.staff_phone, clinic.phone)
