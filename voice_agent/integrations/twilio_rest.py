"""The Twilio REST client (official SDK), aimed at `VOICE_AGENT_TWILIO_API_BASE` when set.

The SDK has no base-URL setting, so a small HTTP client rewrites the scheme and host of every
request (``https://api.twilio.com/2010-04-01/…`` → ``http://127.0.0.1:PORT/2010-04-01/…``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from voice_agent.settings import Settings


class RebasedHttpClient(TwilioHttpClient):
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        parts = urlsplit(base_url)
        self._scheme, self._netloc = parts.scheme, parts.netloc

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(url)
        rebased = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, ""))
        return super().request(method, rebased, *args, **kwargs)


def make_twilio_client(settings: Settings, timeout: float = 10.0) -> Client | None:
    """The REST client, or None when Twilio is not configured."""
    if settings.twilio_account_sid is None or settings.twilio_auth_token is None:
        return None
    http_client = (
        RebasedHttpClient(settings.twilio_api_base, timeout)
        if settings.twilio_api_base
        else TwilioHttpClient(timeout=timeout)
    )
    return Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=http_client,
    )
