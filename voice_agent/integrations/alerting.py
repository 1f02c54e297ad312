"""Alerts through the outbox: deduplicated and rate-limited, so one outage is one message.

- Dedup: one alert per *kind* per window (``alert_dedup_minutes``); the row key carries the
  window, so two processes alerting at once still make one row.
- Rate limit: at most ``alert_max_per_hour`` alerts of any kind per hour.
- Never raises into the caller's path: a failure to enqueue is logged.
Suppressed alerts still go to the log. Messages must not contain patient data.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from voice_agent.clock import Clock
from voice_agent.integrations.outbox import Outbox
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow

logger = logging.getLogger(__name__)


class OutboxAlerter:
    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        clock: Clock,
        *,
        dedup_minutes: int = 30,
        max_per_hour: int = 12,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._clock = clock
        self._window = timedelta(minutes=dedup_minutes)
        self._max = max_per_hour
        self.suppressed = 0

    async def alert(self, kind: str, message: str) -> None:
        await asyncio.to_thread(self.alert_sync, kind, message)

    def alert_sync(self, kind: str, message: str) -> bool:
        """Enqueue in its own transaction; True when a message will go out."""
        try:
            with transaction(self._engine) as session:
                return self.enqueue_in(session, kind, message)
        except IntegrityError:
            return self._suppress(kind, message, "duplicate")
        except Exception:
            logger.exception("could not enqueue alert %s", kind)
            return False

    def enqueue_in(self, session: Session, kind: str, message: str) -> bool:
        """Enqueue inside the caller's transaction (dead-letter hooks use this)."""
        now = self._clock.now()
        kind = kind[:40]
        recent_same = session.execute(
            select(func.count()).where(
                OutboxRow.kind == "alert",
                col(OutboxRow.key).startswith(f"alert:{kind}:"),
                col(OutboxRow.created_at) > now - self._window,
            )
        ).scalar_one()
        if recent_same:
            return self._suppress(kind, message, "duplicate")
        last_hour = session.execute(
            select(func.count()).where(
                OutboxRow.kind == "alert", col(OutboxRow.created_at) > now - timedelta(hours=1)
            )
        ).scalar_one()
        if last_hour >= self._max:
            return self._suppress(kind, message, "rate limit")
        bucket = int(now.timestamp() // self._window.total_seconds())
        try:
            with session.begin_nested():
                self._outbox.enqueue_in(
                    session,
                    "alert",
                    f"alert:{kind}:{bucket}",
                    {"kind": kind, "message": message[:900]},
                )
        except IntegrityError:
            return self._suppress(kind, message, "duplicate")
        logger.warning("ALERT %s: %s", kind, message)
        return True

    def _suppress(self, kind: str, message: str, why: str) -> bool:
        self.suppressed += 1
        logger.warning("ALERT %s (not sent again: %s): %s", kind, why, message)
        return False
