"""WhatsApp voice notes read as text: many patients in Brazil speak their messages. The audio is
fetched from Twilio's media URL with the account's credentials and transcribed by OpenAI (the
text channel's client, ``transcription_model``); the transcript is then answered like any
message, red-flag check first. Without OpenAI, or when either step fails, the caller is asked to
type (``web.chat``): a voice note is never dropped without an answer.

Only URLs on the configured Twilio API host are fetched (the URL comes in a signed webhook, but
the credentials must not go anywhere else); Twilio answers with a redirect to its media store,
which httpx follows without the credentials (another host). The audio and its transcript are
patient data: neither is logged.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx
from openai import APIError, AsyncOpenAI

from voice_agent.settings import Settings

logger = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
MAX_BYTES = 16 * 1024 * 1024
"""WhatsApp's own limit for an audio message."""
FETCH_SECONDS = 10.0
LANGUAGES = {"pt-BR": "pt", "ru": "ru", "en": "en"}
"""The Transcriptions API's language hint (ISO-639-1) for each of ours."""


class VoiceNotes:
    def __init__(self, settings: Settings, client: AsyncOpenAI) -> None:
        assert settings.twilio_account_sid and settings.twilio_auth_token
        self._auth = (settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value())
        self._origin = _origin(settings.twilio_api_base or TWILIO_API)
        self._client = client
        self._model = settings.transcription_model

    @classmethod
    def of(cls, settings: Settings, client: AsyncOpenAI | None) -> VoiceNotes | None:
        """Voice notes are read when both Twilio credentials and OpenAI are configured."""
        if client is None or not (settings.twilio_account_sid and settings.twilio_auth_token):
            return None
        return cls(settings, client)

    async def transcribe(self, url: str, content_type: str, language: str | None) -> str | None:
        """The voice note's words, or ``None`` (a URL elsewhere, a failed fetch or
        transcription, silence): the caller is then asked to type."""
        if _origin(url) != self._origin:
            logger.warning("voice note on another host than Twilio's API: not fetched")
            return None
        try:
            audio = await self._fetch(url)
        except (httpx.HTTPError, _TooLarge) as exc:
            logger.warning("voice note not fetched from Twilio (%s)", type(exc).__name__)
            return None
        name = "voice-note." + (content_type.split("/")[-1].split(";")[0] or "ogg")
        try:
            result = await self._client.audio.transcriptions.create(
                model=self._model,
                file=(name, audio, content_type or "audio/ogg"),
                language=LANGUAGES.get(language or "", "pt"),
            )
        except APIError as exc:
            logger.warning("voice note not transcribed (%s)", type(exc).__name__)
            return None
        text = result.text.strip()
        return text or None

    async def _fetch(self, url: str) -> bytes:
        async with (
            httpx.AsyncClient(
                auth=self._auth, follow_redirects=True, timeout=FETCH_SECONDS
            ) as http,
            http.stream("GET", url) as response,
        ):
            response.raise_for_status()
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise _TooLarge
                chunks.append(chunk)
            return b"".join(chunks)


class _TooLarge(Exception):
    pass


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
