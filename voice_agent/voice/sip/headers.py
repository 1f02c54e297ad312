"""Who is calling, from the SIP INVITE's headers (``data.sip_headers`` of the webhook).

Pure functions over values. OpenAI says these headers are untrusted call metadata: anyone who
knows the project's SIP address can send an INVITE with any ``From``. So a caller's number is
vouched for only when the INVITE carries our own per-call token (``X-VA-Token``), which only our
``<Dial><Sip>`` TwiML puts there (:mod:`voice_agent.voice.sip.transport`); otherwise the caller
is treated like a withheld number (may book, must prove who they are to touch appointments).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

CALL_HEADER = "X-VA-Call"
"""The Twilio CallSid of the leg that dialled OpenAI (our ``<Dial><Sip>``)."""
TOKEN_HEADER = "X-VA-Token"
"""Our signed single-use token bound to that CallSid."""

_URI = re.compile(r"<?\s*(?:sips?|tel):([^@;>\s]+)", re.IGNORECASE)
_PHONE = re.compile(r"\+?[0-9][0-9\-. ()]{5,20}")
_ANONYMOUS = {"anonymous", "restricted", "unknown", "unavailable", "private"}


@dataclass(frozen=True)
class SipCall:
    """What the INVITE says about one incoming call."""

    call_id: str
    caller: str | None
    """The caller's number as written in ``From`` (None: withheld or not a number)."""
    dialled: str | None
    """The number called, from ``To`` (None when the user part is not a number)."""
    twilio_call_sid: str | None
    token: str | None
    sip_call_id: str | None

    @property
    def via_twilio_dial(self) -> bool:
        return self.twilio_call_sid is not None and self.token is not None


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of a header (names compare case-insensitively, as SIP says)."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def number_of(value: str | None) -> str | None:
    """The phone number in a ``From``/``To`` value: ``"Ana" <sip:+5511…@host>;tag=…``."""
    if not value:
        return None
    match = _URI.search(value)
    user = unquote(match.group(1)) if match else value.strip()
    if user.lower() in _ANONYMOUS:
        return None
    if not _PHONE.fullmatch(user):
        return None
    digits = "".join(ch for ch in user if ch.isdigit())
    return ("+" + digits) if user.startswith("+") else digits


def read_sip_call(call_id: str, headers: Iterable[tuple[str, str]]) -> SipCall:
    pairs = list(headers)
    call_sid = header(pairs, CALL_HEADER) or header(pairs, "X-Twilio-CallSid")
    if call_sid is not None and not re.fullmatch(r"CA[0-9a-fA-F]{32}", call_sid):
        call_sid = None
    token = header(pairs, TOKEN_HEADER)
    return SipCall(
        call_id=call_id,
        caller=number_of(header(pairs, "From")),
        dialled=number_of(header(pairs, "To")),
        twilio_call_sid=call_sid,
        token=token if token and len(token) <= 512 else None,
        sip_call_id=header(pairs, "Call-ID"),
    )
