"""Per-call media-stream tokens: signed, bound to one CallSid, short-lived and single use.

The voice webhook mints a token into ``<Parameter name="token">``; the media-stream websocket
accepts the stream only if the token verifies, names the same CallSid as the ``start`` frame,
has not expired, and its nonce is consumed now (atomically in the database, so a replay is
refused by every app process, not only the one that minted it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TokenClaims:
    call_sid: str
    nonce: str
    expires_at: int


class TokenError(ValueError):
    """Why a token was refused (safe to log: no secret, no patient data)."""


class CallTokens:
    def __init__(self, secret: bytes, lifetime: timedelta = timedelta(seconds=60)) -> None:
        if len(secret) < 16:
            raise ValueError("the call token secret must be at least 16 bytes")
        self._secret = secret
        self._lifetime = lifetime

    def mint(self, call_sid: str, now: datetime) -> tuple[str, TokenClaims]:
        nonce = secrets.token_urlsafe(16)
        expires = int((now + self._lifetime).timestamp())
        body = f"{call_sid}|{expires}|{nonce}".encode()
        token = _b64(body) + "." + _b64(self._sign(body))
        return token, TokenClaims(call_sid, nonce, expires)

    def verify(self, token: str, call_sid: str, now: datetime) -> TokenClaims:
        try:
            body_part, signature_part = token.split(".", 1)
            body = _unb64(body_part)
            signature = _unb64(signature_part)
        except ValueError:
            raise TokenError("malformed token") from None
        if not hmac.compare_digest(signature, self._sign(body)):
            raise TokenError("bad token signature")
        try:
            token_call, expires_text, nonce = body.decode().split("|")
            expires = int(expires_text)
        except ValueError:
            raise TokenError("malformed token body") from None
        if not hmac.compare_digest(token_call, call_sid):
            raise TokenError("token belongs to another call")
        if now.timestamp() > expires:
            raise TokenError("token expired")
        return TokenClaims(token_call, nonce, expires)

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad base64") from exc
