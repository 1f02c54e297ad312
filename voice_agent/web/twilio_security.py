"""Twilio request signatures on webhooks and on the media-stream websocket upgrade.

Twilio signs the public URL it called. That URL comes from ``VOICE_AGENT_PUBLIC_URL`` only:
taken from the request's ``Host``/``X-Forwarded-Host``, the signature base (and the URLs we hand
Twilio back) would be the client's to choose. Without it the signed routes answer 503, except in
the local-experiment mode that skips signatures altogether.

Once a form is verified its values are cleaned for the rest of the app: NUL characters and
lone surrogates removed (PostgreSQL refuses both), Twilio ids checked for their shape.
"""

from __future__ import annotations

import logging
import math
import re
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, WebSocket
from starlette.datastructures import Headers
from twilio.request_validator import RequestValidator

from voice_agent.settings import Settings
from voice_agent.web.limits import CALL_RATE, TokenBuckets

logger = logging.getLogger(__name__)


SID_PATTERNS = {
    "CallSid": re.compile(r"CA[0-9A-Za-z]{32}"),
    "ParentCallSid": re.compile(r"CA[0-9A-Za-z]{32}"),
    "MessageSid": re.compile(r"(SM|MM)[0-9A-Za-z]{32}"),
    "AccountSid": re.compile(r"AC[0-9A-Za-z]{32}"),
}
"""Twilio's ids: two letters and 32 characters (anything else is not from Twilio)."""

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FIELDS = 100
MAX_VALUE_CHARS = 32_000


class PublicUrlMissing(HTTPException):
    def __init__(self) -> None:
        super().__init__(503, "VOICE_AGENT_PUBLIC_URL is not set: cannot verify Twilio")


def public_base(settings: Settings, headers: Headers, scheme: str, host: str) -> str:
    """``https://host`` as Twilio sees us: ``VOICE_AGENT_PUBLIC_URL``, never a client header.

    Only the local-experiment mode (signatures skipped) falls back to the request's own host.
    """
    if settings.public_url:
        return settings.public_url
    if not settings.insecure_skip_twilio_signature:
        raise PublicUrlMissing()
    proto = headers.get("x-forwarded-proto", scheme).split(",")[0].strip()
    forwarded_host = headers.get("x-forwarded-host", host).split(",")[0].strip()
    return f"{proto}://{forwarded_host}"


def clean_value(value: str) -> str:
    """Free text as PostgreSQL and UTF-8 accept it: no NUL, no lone surrogate."""
    value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _clean_form(params: dict[str, str]) -> dict[str, str]:
    if len(params) > MAX_FIELDS:
        raise HTTPException(400, "too many form fields")
    for field, pattern in SID_PATTERNS.items():  # judged as sent: a NUL is not cleaned away
        value = params.get(field)
        if value is not None and value != "" and not pattern.fullmatch(value):
            raise HTTPException(400, f"malformed {field}")
    cleaned = {}
    for key, value in params.items():
        if len(value) > MAX_VALUE_CHARS:
            raise HTTPException(400, "form field too long")
        cleaned[clean_value(key)] = clean_value(value)
    return cleaned


def _validator(settings: Settings) -> RequestValidator | None:
    if settings.twilio_auth_token is None:
        return None
    return RequestValidator(settings.twilio_auth_token.get_secret_value())


async def verified_form(request: Request, settings: Settings) -> dict[str, str]:
    """The webhook's form fields, after the signature checked out (403 otherwise)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:  # Twilio posts forms; JSON here is not from Twilio
        raise HTTPException(415, "expected a form body")
    try:
        form = await request.form()
    except Exception:
        raise HTTPException(400, "malformed form body") from None
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    if len(params) != len(form):  # Twilio posts urlencoded fields, never file uploads
        raise HTTPException(400, "unexpected file upload")
    if settings.insecure_skip_twilio_signature:
        return _clean_form(params)
    validator = _validator(settings)
    signature = request.headers.get("x-twilio-signature")
    if validator is None or not signature:
        logger.warning("refused unsigned Twilio request to %s", request.url.path)
        raise HTTPException(403, "missing Twilio signature")
    base = public_base(settings, request.headers, request.url.scheme, request.url.netloc)
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not validator.validate(url, params, signature):
        logger.warning("refused badly signed Twilio request to %s", request.url.path)
        raise HTTPException(403, "invalid Twilio signature")
    cleaned = _clean_form(params)
    _limit_call(request, cleaned.get("CallSid", ""))
    return cleaned


def _limit_call(request: Request, call_sid: str) -> None:
    """One call's callbacks at a human pace (checked after the signature, so a stranger cannot
    spend a real call's allowance)."""
    if not call_sid or request.app.state.settings.rate_limit_scale <= 0:
        return
    buckets = getattr(request.app.state, "call_buckets", None)
    if buckets is None:
        buckets = request.app.state.call_buckets = TokenBuckets(CALL_RATE)
    retry_after = buckets.take(call_sid)
    if retry_after is not None:
        logger.warning("call over its callback rate limit")
        raise HTTPException(
            429, "too many requests for this call", {"Retry-After": str(math.ceil(retry_after))}
        )


def websocket_signature_ok(websocket: WebSocket, settings: Settings) -> bool:
    """Twilio signs ``wss://host/path`` with no parameters on the upgrade request."""
    if settings.insecure_skip_twilio_signature:
        return True
    validator = _validator(settings)
    signature = websocket.headers.get("x-twilio-signature")
    if validator is None or not signature or not settings.public_url:
        return False
    base = public_base(settings, websocket.headers, "https", websocket.url.netloc)
    parts = urlsplit(base)
    url = f"wss://{parts.netloc}{websocket.url.path}"
    return bool(validator.validate(url, {}, signature))


def stream_url(settings: Settings, request: Request, path: str) -> str:
    base = public_base(settings, request.headers, request.url.scheme, request.url.netloc)
    return "wss://" + urlsplit(base).netloc + path


def call_sid_of(params: dict[str, str]) -> str:
    """The call a callback is about (400 when a signed request names none)."""
    call_sid = params.get("CallSid", "")
    if not call_sid:
        raise HTTPException(400, "not a call")
    return call_sid
