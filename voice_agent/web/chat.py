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
from pydantic import BaseModel, Field
from twilio.twiml.messaging_response import MessagingResponse

from voice_agent.conversation.engine import ConversationService
from voice_agent.patients.service import InvalidPatientData, normalize_phone
from voice_agent.web.twilio_security import verified_form

logger = logging.getLogger("voice_agent.chat")
router = APIRouter()
STATIC = Path(__file__).resolve().parent / "static"
XML = "application/xml"
MESSAGE_LIMIT = 1600
"""Twilio's limit for one WhatsApp/SMS body."""

PROBLEMS = {
    "malformed": {
        "pt-BR": "Não consegui ler essa mensagem. Pode enviar de novo?",
        "en": "I could not read that message. Could you send it again?",
        "ru": "Не удалось прочитать сообщение. Отправьте его, пожалуйста, ещё раз.",
    },
}


def get_conversations(request: Request) -> ConversationService:
    """One conversation service per app, built on first use."""
    conversations = getattr(request.app.state, "conversations", None)
    if conversations is None:
        conversations = ConversationService(request.app.state.services)
        request.app.state.conversations = conversations
    return conversations  # type: ignore[no-any-return]


ConversationsDep = Annotated[ConversationService, Depends(get_conversations)]


def message_twiml(text: str) -> str:
    response = MessagingResponse()
    response.message(text[:MESSAGE_LIMIT])
    return str(response)


def _problem(request: Request, status: int) -> Response:
    language = request.app.state.services.clinic().default_language
    text = PROBLEMS["malformed"].get(language, PROBLEMS["malformed"]["en"])
    return Response(message_twiml(text), status_code=status, media_type=XML)


@router.post("/twilio/messaging")
async def twilio_messaging(request: Request, conversations: ConversationsDep) -> Response:
    """Twilio's incoming WhatsApp/SMS webhook; answers with TwiML ``<Message>``."""
    settings = request.app.state.settings
    try:
        params = await verified_form(request, settings)
    except HTTPException as exc:
        if exc.status_code == 403:
            return Response("forbidden", status_code=403, media_type="text/plain")
        return _problem(request, 400)
    sender = params.get("From", "")
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    try:
        phone = normalize_phone(sender, conversations.services.clinic().country)
    except InvalidPatientData:
        logger.info("messaging webhook without a usable From (%s)", channel)
        return _problem(request, 400)
    body = params.get("Body", "")
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


class ChatRequest(BaseModel):
    session_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    text: str = Field(default="", max_length=20_000)
    phone: str | None = Field(default=None, max_length=40)
    language: str | None = Field(default=None, pattern=r"^(pt-BR|ru|en)$")


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def require_chat_access(request: Request) -> None:
    """The web chat trusts the phone number a person types, so it is a staff tool.

    With ``VOICE_AGENT_CHAT_API_TOKEN`` set, every request needs ``Authorization: Bearer <token>``;
    without it (the embedded default) only this machine may use it.
    """
    token = request.app.state.settings.chat_api_token
    if token is None:
        host = request.client.host if request.client else ""
        if host not in LOOPBACK:
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
