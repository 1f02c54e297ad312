"""OpenAI's webhook deliveries: verified with the SDK, each delivery and each call taken once.

``client.webhooks.unwrap`` checks the Standard Webhooks signature (``webhook-signature`` =
``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the ``whsec_`` secret) and refuses a
timestamp more than five minutes away from now (a stale capture). What the signature cannot
stop, a valid delivery sent again (OpenAI's own retry, or a capture replayed within those five
minutes), is stopped here: the ``webhook-id`` is claimed in the database
(``processed_request``, the table of the Twilio replays), and so is the ``call_id``, so two
deliveries of one call start one session, across processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from openai import AsyncOpenAI, InvalidWebhookSignatureError
from openai.types.webhooks import RealtimeCallIncomingWebhookEvent
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from voice_agent.store.db import transaction
from voice_agent.store.replay_tables import ProcessedRequest

logger = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300  # the SDK's and Standard Webhooks' window


class WebhookRefused(ValueError):
    """A delivery that is not OpenAI's (bad or missing signature, stale timestamp, bad body)."""


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    event: RealtimeCallIncomingWebhookEvent | None
    """The incoming call, or None for an event type this app does not act on."""


def verify_delivery(
    client: AsyncOpenAI, body: bytes, headers: Mapping[str, str], secret: str
) -> Delivery:
    """The delivery's id and its call event, once the SDK has verified the signature."""
    webhook_id = headers.get("webhook-id") or ""
    try:
        event = client.webhooks.unwrap(body, headers, secret=secret)
    except InvalidWebhookSignatureError as exc:
        raise WebhookRefused(str(exc)) from None
    except ValueError as exc:  # a signed body that is not JSON (never from OpenAI)
        raise WebhookRefused(f"unreadable body: {type(exc).__name__}") from None
    if not webhook_id:
        raise WebhookRefused("missing webhook-id")
    if isinstance(event, RealtimeCallIncomingWebhookEvent):
        return Delivery(webhook_id, event)
    return Delivery(webhook_id, None)


def _key(kind: str, value: str) -> str:
    """A ``processed_request`` key (96 characters at most; long ids are hashed)."""
    key = f"{kind}:{value}"
    if len(key) <= 96:
        return key
    return f"{kind}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"


def _claim(engine: Engine, key: str, now: datetime) -> bool:
    try:
        with transaction(engine) as session:
            session.add(ProcessedRequest(key=key, created_at=now, response="claimed"))
        return True
    except IntegrityError:
        return False


async def first_delivery(engine: Engine, webhook_id: str, now: datetime) -> bool:
    """True for the first time this ``webhook-id`` is seen (by any process)."""
    return await asyncio.to_thread(_claim, engine, _key("openai-webhook", webhook_id), now)


async def first_for_call(engine: Engine, call_id: str, now: datetime) -> bool:
    """True for the first delivery that announces this ``call_id``."""
    return await asyncio.to_thread(_claim, engine, _key("sip-call", call_id), now)


def _release(engine: Engine, keys: list[str]) -> None:
    with transaction(engine) as session:
        session.execute(delete(ProcessedRequest).where(col(ProcessedRequest.key).in_(keys)))


async def release(engine: Engine, webhook_id: str, call_id: str | None) -> None:
    """Handling failed: forget the claims, so OpenAI's retry of this delivery is served."""
    keys = [_key("openai-webhook", webhook_id)]
    if call_id is not None:
        keys.append(_key("sip-call", call_id))
    await asyncio.to_thread(_release, engine, keys)
