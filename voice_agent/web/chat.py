"""Text channels over HTTP: Twilio's WhatsApp/SMS webhook, the JSON chat API and the chat page.

All three reach ``ConversationService.handle``. The messaging webhook trusts only Twilio's
signature and takes the caller from ``From``; the JSON API is for the web chat page (a staff
try-out channel), where a phone number is what the person typed, not a verified caller.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, field_validator
from twilio.twiml.messaging_response import MessagingResponse

from voice_agent.conversation.engine import ConversationService
from voice_agent.conversation.voice_notes import VoiceNotes
from voice_agent.errors import InvalidPatientData
from voice_agent.logging_setup import current_call
from voice_agent.patients.service import normalize_phone
from voice_agent.settings import LOOPBACK_HOSTS
from voice_agent.web.limits import CALLER_RATE, TokenBuckets, too_many
from voice_agent.web.replay import ReplayGuard
from voice_agent.web.twilio_security import verified_form

logger = logging.getLogger(__name__)
router = APIRouter()
STATIC = Path(__file__).resolve().parent / "static"
XML = "application/xml"
MESSAGE_LIMIT = 1600
"""Twilio's limit for one WhatsApp/SMS body."""


def get_conversations(request: Request) -> ConversationService:
    """One conversation service per app, built on first use."""
    conversations = getattr(request.app.state, "conversations", None)
    if conversations is None:
        conversations = ConversationService(request.app.state.services)
        request.app.state.conversations = conversations
    return conversations


ConversationsDep = Annotated[ConversationService, Depends(get_conversations)]


def message_twiml(text: str) -> str:
    response = MessagingResponse()
    response.message(text[:MESSAGE_LIMIT])
    return str(response)


def _problem(conversations: ConversationService, status: int) -> Response:
    language = conversations.services.clinic().default_language
    text = conversations.replies.say(language, "malformed_message")
    return Response(message_twiml(text), status_code=status, media_type=XML)


def _senders(request: Request) -> TokenBuckets:
    """Per-sender rate limit of the messaging webhook (one per app)."""
    buckets = getattr(request.app.state, "message_senders", None)
    if buckets is None:
        buckets = request.app.state.message_senders = TokenBuckets(CALLER_RATE)
    return buckets


def _ignored() -> Response:
    """An empty answer: Twilio takes the delivery as done and sends nothing back."""
    return Response(str(MessagingResponse()), media_type=XML)


@router.post("/twilio/messaging")
async def twilio_messaging(request: Request, conversations: ConversationsDep) -> Response:
    """Twilio's incoming WhatsApp/SMS webhook; answers with TwiML ``<Message>``.

    Each ``MessageSid`` is processed once: Twilio's retry of a message we answered, or a
    replayed capture of it, is acknowledged with an empty answer.
    """
    settings = request.app.state.settings
    try:
        params = await verified_form(request, settings)
    except HTTPException as exc:
        if exc.status_code in (403, 503):
            return Response("forbidden", status_code=exc.status_code, media_type="text/plain")
        return _problem(conversations, 400)
    sender = params.get("From", "")
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    try:
        phone = normalize_phone(sender, conversations.services.clinic().country)
    except InvalidPatientData:
        logger.info("messaging webhook without a usable From (%s)", channel)
        return _problem(conversations, 400)
    limited = request.app.state.settings.rate_limit_scale > 0
    retry_after = _senders(request).take(phone) if limited else None
    if retry_after is not None:
        logger.warning("%s sender over its rate limit", channel)
        return too_many(retry_after)
    # Twilio sends the same sid under its older names too; any of them keys the replay guard.
    message_sid = (
        params.get("MessageSid") or params.get("SmsMessageSid") or params.get("SmsSid") or ""
    )
    current_call.set(message_sid or None)
    if not message_sid:
        return await _message_turn(request, conversations, channel, phone, params)
    guard = ReplayGuard(conversations.services.engine)
    key = f"msg:{message_sid}"
    claim = await guard.claim(key, conversations.services.clock.now())
    if claim.state != "new":
        logger.info("%s message delivered again: acknowledged, not processed", channel)
        return _ignored()
    try:
        response = await _message_turn(request, conversations, channel, phone, params)
    except BaseException:
        await guard.release(key)  # Twilio's retry will be processed
        raise
    await guard.complete(key, "")
    return response


async def _message_turn(
    request: Request,
    conversations: ConversationService,
    channel: str,
    phone: str,
    params: dict[str, str],
) -> Response:
    body = params.get("Body", "")
    if not body.strip() and _media_count(params):
        language = await _patient_language(conversations, phone)
        heard = await _voice_note(request, conversations, language, params)
        if heard is None:
            return _media_only(conversations, channel, language, params)
        body = heard
    confirmations = getattr(request.app.state, "confirmations", None)
    red_flag = conversations.red_flag(body) is not None  # an emergency is never a "1/2/3"
    if confirmations is not None and not red_flag:  # a reply to "1 confirm, 2 cancel, 3 change"?
        decision = await confirmations.whatsapp_reply(phone, body)
        if decision is not None and decision.text is not None:
            logger.info("%s confirmation reply handled", channel)
            return Response(message_twiml(decision.text), media_type=XML)
        if decision is not None and decision.handover is not None:
            body = decision.handover
    reply = await conversations.handle(channel, phone, body, phone=phone, phone_verified=True)
    logger.info(
        "%s turn: stage=%s engine=%s tools=%s %.0fms",
        channel,
        reply.stage,
        reply.engine,
        ",".join(reply.tool_calls),
        reply.duration_ms,
    )
    return Response(message_twiml(reply.text), media_type=XML)


def _media_count(params: dict[str, str]) -> int:
    try:
        return max(0, int(params.get("NumMedia", "0") or 0))
    except ValueError:
        return 0


async def _patient_language(conversations: ConversationService, phone: str) -> str:
    patient = await conversations.services.patients.find_by_phone(phone)
    language = patient.language if patient is not None else None
    return language or conversations.services.clinic().default_language


async def _voice_note(
    request: Request, conversations: ConversationService, language: str, params: dict[str, str]
) -> str | None:
    """A voice note's transcript (``conversation.voice_notes``), or ``None``: not audio, or no
    OpenAI, or it could not be fetched or heard."""
    content_type = params.get("MediaContentType0", "")
    url = params.get("MediaUrl0", "")
    if not content_type.startswith("audio/") or not url:
        return None
    state = request.app.state
    if not hasattr(state, "voice_notes"):  # built once per app, None without OpenAI or Twilio
        client = conversations.llm.client if conversations.llm is not None else None
        state.voice_notes = VoiceNotes.of(conversations.services.settings, client)
    notes: VoiceNotes | None = state.voice_notes
    if notes is None:
        return None
    return await notes.transcribe(url, content_type, language)


def _media_only(
    conversations: ConversationService, channel: str, language: str, params: dict[str, str]
) -> Response:
    """A voice note, photo or document with no text that could not be read (WhatsApp voice
    notes are how many patients write): said in the patient's language, instead of "I received
    no text"."""
    kind = params.get("MediaContentType0", "").split("/")[0]
    key = "media_audio" if kind == "audio" else "media_file"
    text = conversations.replies.say(language, key, phone=conversations.services.clinic().phone)
    logger.info("%s message with %s media and no text: asked for text", channel, kind or "other")
    return Response(message_twiml(text), media_type=XML)


class ChatRequest(BaseModel):
    session_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    text: str = Field(default="", max_length=20_000)
    phone: str | None = Field(default=None, max_length=40)
    language: str | None = Field(default=None, pattern=r"^(pt-BR|ru|en)$")

    @field_validator("text", "phone")
    @classmethod
    def _storable_text(cls, value: str | None) -> str | None:
        """JSON can carry a lone surrogate (``"\\ud800"``) and NUL, which UTF-8 and PostgreSQL
        refuse; they are refused here, as a 422, instead of failing deep in a write."""
        if value is None:
            return value
        if "\x00" in value:
            raise ValueError("contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("is not valid Unicode text (lone surrogate)") from None
        return value


LOOPBACK = LOOPBACK_HOSTS
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip", "via")
"""A request that passed through a proxy says so; such a request is not this machine's user,
whatever address uvicorn's proxy-headers middleware put in its place."""


def is_local_request(request: Request) -> bool:
    """Whether the socket's peer is this machine and no proxy stands between.

    ``voice-agent serve`` runs uvicorn without proxy headers, so ``request.client`` is the peer;
    under another server with ``FORWARDED_ALLOW_IPS='*'`` it may be a header's claim, which is
    why any forwarding header disqualifies the request too.
    """
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        return False
    return not any(name in request.headers for name in FORWARDING_HEADERS)


def require_chat_access(request: Request) -> None:
    """The web chat trusts the phone number a person types, so it is a staff tool.

    With ``VOICE_AGENT_CHAT_API_TOKEN`` set, every request needs ``Authorization: Bearer <token>``;
    without it (the embedded default) only this machine may use it, never through a proxy.
    """
    token = request.app.state.settings.chat_api_token
    if token is None:
        if not is_local_request(request):
            raise HTTPException(403, "the web chat is local-only; set VOICE_AGENT_CHAT_API_TOKEN")
        return
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise HTTPException(401, "missing or wrong chat token", {"WWW-Authenticate": "Bearer"})


ChatAccess = Annotated[None, Depends(require_chat_access)]


@router.post("/api/chat")
async def api_chat(
    payload: ChatRequest, conversations: ConversationsDep, _: ChatAccess
) -> dict[str, Any]:
    """One chat turn: the reply text plus the structured state (offers, the appointment changed)."""
    current_call.set(f"web:{payload.session_id}")
    reply = await conversations.handle(
        "web",
        payload.session_id,
        payload.text,
        phone=payload.phone,
        language=payload.language,
    )
    return reply.public()


@router.get("/chat", include_in_schema=False)
async def chat_page() -> FileResponse:
    return FileResponse(STATIC / "chat.html", media_type="text/html")
