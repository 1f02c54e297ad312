"""Which transport a dialled number uses, and the TwiML that sends a Twilio call to OpenAI.

``media_streams`` (the default): Twilio streams the audio to this app, which relays it to
OpenAI. ``openai_sip``: Twilio dials the OpenAI project's SIP address (``<Dial><Sip>``) with
our per-call token in an ``X-`` header, OpenAI announces the call to ``POST /openai/webhook``,
and this app joins the session on the sideband. The ``<Dial action>`` brings the call back to us
if the SIP leg fails (OpenAI refused it, 486 at capacity, unreachable): the caller then gets the
Media Streams bridge, or the no-AI line.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, VoiceResponse

from voice_agent.clinic.model import Clinic
from voice_agent.settings import Settings
from voice_agent.voice.sip.headers import CALL_HEADER, TOKEN_HEADER

Transport = Literal["media_streams", "openai_sip"]
SIP_DIAL_TIMEOUT = 15  # seconds Twilio waits for OpenAI to answer before the fallback
FAILED_DIAL = frozenset({"busy", "failed", "no-answer", "canceled"})


def transport_for(settings: Settings, clinic: Clinic, dialled: str | None) -> Transport:
    """The setting wins, then the clinic's per-number choice, then the clinic's default.

    ``openai_sip`` needs the project's SIP address and webhook secret; without them the call
    stays on Media Streams (a half-configured transport must not drop calls)."""
    choice: Transport = settings.voice_transport or clinic.voice_transport
    if settings.voice_transport is None and dialled:
        choice = clinic.voice_transport_numbers.get(_e164(dialled), choice)
    if choice == "openai_sip" and not sip_ready(settings):
        return "media_streams"
    return choice


def sip_ready(settings: Settings) -> bool:
    return bool(
        settings.openai_sip_uri and settings.openai_webhook_secret and settings.openai_enabled
    )


def sip_target(sip_uri: str, call_sid: str, token: str, extra: dict[str, str] | None = None) -> str:
    """The SIP URI with our headers: Twilio sends ``?X-Name=value`` pairs as INVITE headers."""
    headers = {CALL_HEADER: call_sid, TOKEN_HEADER: token, **(extra or {})}
    return f"{sip_uri}?{urlencode(headers)}"


def sip_dial_twiml(
    sip_uri: str,
    call_sid: str,
    token: str,
    *,
    action_url: str,
    caller_id: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> str:
    """``<Dial answerOnBridge action=…><Sip>sip:proj_…@sip.api.openai.com?X-VA-…</Sip></Dial>``."""
    response = VoiceResponse()
    dial = Dial(
        action=action_url,
        method="POST",
        timeout=SIP_DIAL_TIMEOUT,
        answer_on_bridge=True,
        caller_id=caller_id,
    )
    dial.sip(sip_target(sip_uri, call_sid, token, extra_headers))
    response.append(dial)
    return str(response)


def _e164(number: str) -> str:
    return "+" + "".join(ch for ch in number if ch.isdigit()) if number.startswith("+") else number


def sip_answer_twiml(
    settings: Settings,
    clinic: Clinic,
    *,
    call_sid: str,
    token: str,
    base: str,
    dialled: str | None,
    appointment_id: str | None = None,
) -> str | None:
    """``<Dial><Sip>`` to OpenAI when this number is on ``openai_sip``, else None (streams).

    A confirmation call names its appointment in ``X-VA-Appointment`` (for OpenAI's logs and
    the operator; the call record, found by the token, is what the app trusts)."""
    if transport_for(settings, clinic, dialled) != "openai_sip" or not settings.openai_sip_uri:
        return None
    extra = {"X-VA-Appointment": appointment_id} if appointment_id else None
    return sip_dial_twiml(
        settings.openai_sip_uri,
        call_sid,
        token,
        action_url=f"{base}/twilio/sip-dial-done",
        extra_headers=extra,
    )
