"""Opening a Twilio media stream: wait for its ``start`` frame, which carries the call token."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from voice_agent.voice.twilio.protocol import Start, parse_twilio_frame

logger = logging.getLogger(__name__)

START_TIMEOUT = 10.0
FRAMES_BEFORE_START = 4  # Twilio sends ``connected`` then ``start``; two strays are tolerated


class TextReceiver(Protocol):
    async def receive_text(self) -> str: ...


async def read_start(websocket: TextReceiver) -> Start | None:
    """Skip ``connected`` (and a stray frame or two) until ``start``, which carries the per-call
    token (Twilio takes no query string on the stream URL, so the token cannot be checked
    before the upgrade). Capped: a few frames and a few seconds, then the stream is refused."""
    frames = 0
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while frames < FRAMES_BEFORE_START:
                frame = parse_twilio_frame(await websocket.receive_text())
                frames += 1
                if isinstance(frame, Start):
                    return frame
    except (TimeoutError, Exception):
        logger.warning("media stream refused: no start frame (%d frames before it)", frames)
        return None
    logger.warning("media stream refused: no start frame within %d frames", frames)
    return None
