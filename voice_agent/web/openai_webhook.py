"""``POST /openai/webhook``: OpenAI's signed project webhooks (``realtime.call.incoming``).

Routing only: verification and once-only claims are in ``voice/sip/webhook.py``, the call is
taken in ``voice/sip/runtime.py``. Answers: 400 for a delivery that is not OpenAI's (bad
signature, stale timestamp), 503 when the SIP transport is not configured, else 200 (a repeated
delivery too: it is acknowledged, and nothing is done twice).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response

from voice_agent.voice.sip.headers import read_sip_call
from voice_agent.voice.sip.runtime import SipRuntime
from voice_agent.voice.sip.webhook import (
    WebhookRefused,
    first_delivery,
    first_for_call,
    release,
    verify_delivery,
)

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/openai")


@router.post("/webhook")
async def openai_webhook(request: Request) -> Response:
    runtime: SipRuntime | None = request.app.state.sip
    settings = request.app.state.settings
    if runtime is None or settings.openai_webhook_secret is None:
        raise HTTPException(503, "the openai_sip transport is not configured")
    body = await request.body()
    try:
        delivery = verify_delivery(
            runtime.client,
            body,
            dict(request.headers),
            settings.openai_webhook_secret.get_secret_value(),
        )
    except WebhookRefused as exc:
        logger.warning("openai webhook refused: %s", exc)
        raise HTTPException(400, "invalid webhook") from None
    engine, now = runtime.services.engine, runtime.services.clock.now()
    if not await first_delivery(engine, delivery.webhook_id, now):
        logger.info("openai webhook repeated: acknowledged, nothing done again")
        return Response(status_code=200)
    if delivery.event is None:
        return Response(status_code=200)  # an event type this app does not act on
    data = delivery.event.data
    if not await first_for_call(engine, data.call_id, now):
        logger.info("sip call announced again: it already has its session")
        return Response(status_code=200)
    sip = read_sip_call(data.call_id, [(h.name, h.value) for h in data.sip_headers])
    try:
        taken = await runtime.take_call(sip)
    except BaseException:
        await release(engine, delivery.webhook_id, data.call_id)  # OpenAI's retry runs afresh
        raise
    logger.info("sip call %s", taken)
    return Response(status_code=200)
