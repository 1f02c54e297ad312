"""Confirmation calls on the phone: what the patient hears when the call we placed is answered
(the Realtime receptionist in confirmation mode, or the keypad path with Twilio alone), and each
keypad (or spoken) answer: 1 confirm, 2 cancel, 3 staff.

``web/twilio_confirm.py`` routes here once the signature checked out and the turn was found new.
"""

from __future__ import annotations

import asyncio
import logging

from voice_agent.confirmations.messages import DIGITS, Answer
from voice_agent.confirmations.runner import ConfirmationRunner, StepContext
from voice_agent.conversation.engine import ConversationService
from voice_agent.store.confirmation_tables import StepStatus
from voice_agent.voice.call_records import open_call_record, stream_already_ran
from voice_agent.voice.keypad import red_flag_twiml
from voice_agent.voice.session import VoiceRuntime
from voice_agent.voice.twilio.gather import (
    MAX_SILENCES,
    gather_twiml,
    goodbye_twiml,
    transfer_twiml,
)
from voice_agent.voice.twilio.twiml import hangup_twiml, stream_twiml

logger = logging.getLogger(__name__)


async def answer_twiml(
    runtime: VoiceRuntime,
    runner: ConfirmationRunner,
    step_id: int,
    call_sid: str,
    params: dict[str, str],
    *,
    base: str,
    stream_url: str,
) -> str:
    """The patient's phone was answered: the Realtime receptionist in confirmation mode, or the
    keypad path when OpenAI is not configured (a failing Realtime session falls back to it)."""
    if await asyncio.to_thread(stream_already_ran, runtime.services.engine, call_sid):
        logger.warning("answer callback repeated after the call's stream ran: no new token")
        return hangup_twiml()
    context = await runner.call_answered(step_id, call_sid)
    if context is None:
        return await _already_settled(runner, step_id, call_sid)
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
        return _keypad_prompt(context, base)
    return stream_twiml(
        stream_url,
        {"token": token},
        status_callback=f"{base}/twilio/stream-status",
        after_url=f"{base}/twilio/after-stream",
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


async def keypad_twiml(runner: ConfirmationRunner, call_sid: str, base: str) -> str:
    """Start (or resume after a failed Realtime session) the keypad confirmation."""
    found = await _call_context(runner, call_sid)
    if found is None:
        return hangup_twiml()
    return _keypad_prompt(found[1], base)


async def answer_turn_twiml(
    runner: ConfirmationRunner,
    conversations: ConversationService,
    params: dict[str, str],
    call_sid: str,
    base: str,
    next_turn: int,
    *,
    silences: int,
) -> str:
    """One keypad (or spoken) answer; ``silences`` counts the silent turns before it."""
    found = await _call_context(runner, call_sid)
    if found is None:
        return hangup_twiml()
    step_id, context = found
    texts, language = context.texts, context.language
    digits = params.get("Digits", "").strip().rstrip("#")
    speech = params.get("SpeechResult", "").strip()
    if not digits and not speech:
        silences += 1
        if silences > MAX_SILENCES:
            return goodbye_twiml(texts.get("gather_goodbye"), language)
        return gather_twiml(
            texts.get("gather_reask"),
            language,
            _gather_url(base, next_turn),
            silences=silences,
        )
    if speech:  # safety first: an emergency is never read as 1, 2 or 3
        emergency = await red_flag_twiml(
            conversations, call_sid, context.patient.phone, speech, language, base
        )
        if emergency is not None:
            return emergency
    answer = DIGITS.get(digits) if digits else texts.read_answer(speech)
    if answer in (Answer.confirm, Answer.cancel):
        key = await runner.apply_answer(context, answer, channel="voice", call_id=call_sid)
        if key in ("confirmed", "cancelled"):
            return goodbye_twiml(texts.get(f"gather_{key}"), language)
        # The booking refused (too late to cancel …): say why and put them through to staff.
        return await _to_staff(runner, context, call_sid, step_id, texts.get(key, **context.values))
    if answer == Answer.change:
        return await _to_staff(runner, context, call_sid, step_id, "")
    return gather_twiml(texts.get("gather_reask"), language, _gather_url(base, next_turn))


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
