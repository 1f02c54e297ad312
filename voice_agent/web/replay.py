"""Process a Twilio request once, across processes: the database's primary key decides.

A route *claims* a key (``msg:SM…``, ``gather:CA…:3``) before acting. The first claim wins and
runs; a repeated request sees the answer stored for it (a gather step replays the same TwiML,
books nothing) or, while the first is still running, that it is busy. A claim whose handling
failed is released, so Twilio's own retry is processed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from fastapi import HTTPException, Request, Response
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from voice_agent.store.db import transaction
from voice_agent.store.replay_tables import ProcessedRequest

logger = logging.getLogger(__name__)
_NUMBER = re.compile(r"[0-9]{1,6}")

KEEP_FOR = timedelta(days=30)
"""How long a processed request is remembered (Twilio retries within minutes)."""


@dataclass(frozen=True)
class Claim:
    state: Literal["new", "done", "busy"]
    response: str | None = None


class ReplayGuard:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _claim(self, key: str, now: datetime, *, again: bool = True) -> Claim:
        try:
            with transaction(self.engine) as session:
                session.add(ProcessedRequest(key=key, created_at=now))
            return Claim("new")
        except IntegrityError:
            with Session(self.engine) as session:
                row = session.get(ProcessedRequest, key)
            if row is None:  # released between our insert and this read: try once more
                return self._claim(key, now, again=False) if again else Claim("busy")
            if row.response is None:
                return Claim("busy")
            return Claim("done", row.response)

    def _complete(self, key: str, response: str) -> None:
        with transaction(self.engine) as session:
            row = session.get(ProcessedRequest, key)
            if row is not None:
                row.response = response
                session.add(row)

    def _release(self, key: str) -> None:
        with transaction(self.engine) as session:
            session.execute(delete(ProcessedRequest).where(col(ProcessedRequest.key) == key))

    def purge(self, now: datetime) -> int:
        with transaction(self.engine) as session:
            result = session.execute(
                delete(ProcessedRequest).where(col(ProcessedRequest.created_at) < now - KEEP_FOR)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def claim(self, key: str, now: datetime) -> Claim:
        return await asyncio.to_thread(self._claim, key, now)

    async def complete(self, key: str, response: str) -> None:
        await asyncio.to_thread(self._complete, key, response)

    async def release(self, key: str) -> None:
        await asyncio.to_thread(self._release, key)


def turn_number(request: Request) -> int | None:
    """``?turn=N`` of a gather action URL (``None`` for URLs from before turns were numbered)."""
    raw = request.query_params.get("turn")
    if raw is None:
        return None
    if not _NUMBER.fullmatch(raw):
        raise HTTPException(400, "malformed turn")
    return int(raw)


async def once(request: Request, key: str, handle: Callable[[], Awaitable[Response]]) -> Response:
    """Run ``handle`` for the first request with ``key``; a repeat gets the same answer."""
    services = request.app.state.services
    guard = ReplayGuard(services.engine)
    claim = await guard.claim(key, services.clock.now())
    if claim.state == "done" and claim.response is not None:
        logger.info("request repeated: answered from its record, nothing done again")
        return Response(claim.response, media_type="application/xml")
    if claim.state == "busy":
        raise HTTPException(409, "this step is being processed")
    try:
        response = await handle()
    except BaseException:
        await guard.release(key)  # failed: Twilio's retry gets a fresh run
        raise
    await guard.complete(key, bytes(response.body).decode())
    return response
