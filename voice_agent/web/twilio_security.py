"""Twilio request signatures on webhooks and on the media-stream websocket upgrade.

Twilio signs the public URL it called; behind a proxy we rebuild it from
``VOICE_AGENT_PUBLIC_URL`` (preferred) or the ``X-Forwarded-*`` headers.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, WebSocket
from starlette.datastructures import Headers
from twilio.request_validator import RequestValidator

from voice_agent.settings import Settings

logger = logging.getLogger("voice_agent.twilio")


def public_base(settings: Settings, headers: Headers, scheme: str, host: str) -> str:
    """``https://host`` as Twilio sees us."""
    if settings.public_url:
        return settings.public_url
    proto = headers.get("x-forwarded-proto", scheme).split(",")[0].strip()
    forwarded_host = headers.get("x-forwarded-host", host).split(",")[0].strip()
    return f"{proto}://{forwarded_host}"


def _validator(settings: Settings) -> RequestValidator | None:
    if settings.twilio_auth_token is None:
        return None
    return RequestValidator(settings.twilio_auth_token.get_secret_value())


async def verified_form(request: Request, settings: Settings) -> dict[str, str]:
    """The webhook's form fields, after the signature checked out (403 otherwise)."""
    try:
        form = await request.form()
    except Exception:
        raise HTTPException(400, "malformed form body") from None
    params = {key: str(value) for key, value in form.items()}
    if settings.insecure_skip_twilio_signature:
        return params
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
    return params


def websocket_signature_ok(websocket: WebSocket, settings: Settings) -> bool:
    """Twilio signs ``wss://host/path`` with no parameters on the upgrade request."""
    if settings.insecure_skip_twilio_signature:
        return True
    validator = _validator(settings)
    signature = websocket.headers.get("x-twilio-signature")
    if validator is None or not signature:
        return False
    base = public_base(settings, websocket.headers, "https", websocket.url.netloc)
    parts = urlsplit(base)
    url = f"wss://{parts.netloc}{websocket.url.path}"
    return bool(validator.validate(url, {}, signature))


def stream_url(settings: Settings, request: Request, path: str) -> str:
    base = public_base(settings, request.headers, request.url.scheme, request.url.netloc)
    return "wss://" + urlsplit(base).netloc + path
