"""The offline receptionist's identity step (text channels and the no-AI phone line).

When a tool refuses to read out or change an appointment because the caller's number is not
carrier-verified, the dialogue hands over here: a code goes to the phone on file, and the caller
answers with the code or the birth date. The goal they had (list, cancel, move, confirm) resumes
once ``verify_identity`` succeeds; nothing about the appointment is said before.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from voice_agent.identity.birth_dates import parse_birth_date
from voice_agent.identity.codes import spoken_code
from voice_agent.identity.texts import IdentityTexts
from voice_agent.tools.registry import ToolResult

if TYPE_CHECKING:
    from voice_agent.conversation.offline.dialogue.core import Run
    from voice_agent.conversation.offline.nlu import Understanding

STAGE = "verify_identity"
REFUSALS = ("verify_first", "identity_locked")
"""Error codes of the tools that mean "prove who you are first"."""


@cache
def _texts(prompts_dir: Path) -> IdentityTexts:
    return IdentityTexts(prompts_dir)


def _say(run: Run, key: str, **fields: object) -> None:
    texts = _texts(run.ctx.services.settings.prompts_dir)
    run.turn.parts.append(texts.say(run.lang, key, **fields))


def refused(result: ToolResult) -> bool:
    return not result.ok and result.error_code in REFUSALS


async def ask(run: Run, goal: str) -> None:
    """Send the code (or ask the birth date) and wait for the answer; ``goal`` resumes after."""
    run.state.goal = goal
    result = await run.call("send_verification_code")
    if result.ok and result.output.get("verified"):
        await run.resume_goal()
        return
    if result.ok:
        texts = _texts(run.ctx.services.settings.prompts_dir)
        via = texts.say(run.lang, f"via_{result.output.get('via') or 'sms'}")
        _say(run, "ask_code", via=via, last4=result.output.get("to_phone_ending", ""))
    elif result.error_code == "identity_locked":
        _give_up(run)
        return
    elif run.ctx.services.identity.can_send_codes:
        _say(run, "code_not_sent")
    elif not await _birth_date_on_file(run):
        _cannot_verify(run)
        return
    else:
        _say(run, "ask_birth_date")
    run.state.stage = STAGE


async def answer(run: Run, text: str, u: Understanding) -> bool:
    """The caller's answer while a code or birth date is awaited."""
    state = run.state
    code = spoken_code(text)
    born = None if code is not None else parse_birth_date(text, run.lang)
    if code is None and born is None:
        # "nenhum desses serve, tem sábado?" is about slots, not a refusal to verify.
        if u.has("no", "reject", "bye") and u.wish.empty and u.service_id is None:
            state.stage, state.goal, state.target = "idle", None, None
            run.say("how_can_help")
            return True
        if u.question is not None or u.unknown_question or u.has("handoff"):
            return False
        reprompt(run)
        return True
    if code is not None:
        arguments = {"code": code}
    else:
        assert born is not None
        arguments = {"birth_date": born.isoformat()}
    result = await run.call("verify_identity", **arguments)
    if not result.ok:
        reprompt(run)
        return True
    output = result.output
    if output.get("verified"):
        _say(run, "verified")
        state.stage = "idle"
        await run.resume_goal()
        return True
    reason = output.get("reason")
    if reason == "wrong":
        key = "wrong_code" if code is not None else "wrong_birth_date"
        _say(run, key, left=output.get("attempts_left", 0))
    elif reason in ("expired", "no_code"):
        if reason == "expired":
            _say(run, "code_expired")
        await ask(run, state.goal or "list")
    elif reason == "no_birth_date":
        if not run.ctx.services.identity.can_send_codes:
            _give_up(run)  # no code was sent either: the front desk's number
            return True
        _say(run, "no_birth_date")
    else:
        _give_up(run)
    return True


def reprompt(run: Run) -> None:
    # Without a way to send codes none was sent: only the birth date is asked for.
    _say(run, "reprompt" if run.ctx.services.identity.can_send_codes else "reprompt_birth_date")


async def _birth_date_on_file(run: Run) -> bool:
    patient = await run.patient_or_none()
    return patient is not None and patient.birth_date is not None


def _cannot_verify(run: Run) -> None:
    """No code can be sent and there is no birth date to ask for: said plainly, with the
    staff's call-back offered ("sim" passes this message, the request, on, as with a question
    we cannot answer) instead of asking for a birth date we cannot check."""
    _say(run, "cannot_verify", phone=run.clinic.phone)
    state = run.state
    state.stage, state.goal, state.target, state.candidates = "idle", None, None, []
    state.unanswered = run.text[:300]


def _give_up(run: Run) -> None:
    _say(run, "locked", phone=run.clinic.phone)
    state = run.state
    state.stage, state.goal, state.target, state.candidates = "idle", None, None, []
