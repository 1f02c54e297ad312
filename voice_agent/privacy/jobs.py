"""The retention job, run by the app's APScheduler in every process (a purge is idempotent, so
two processes purging together only find less to delete)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from apscheduler.schedulers.base import BaseScheduler

from voice_agent.privacy.retention import PurgeReport, purge

if TYPE_CHECKING:
    from voice_agent.services import Services

logger = logging.getLogger("voice_agent.privacy")


async def purge_expired_data(services: Services) -> PurgeReport | None:
    """One purge against the injected clock; a failure is logged and retried next time."""
    try:
        return await asyncio.to_thread(
            purge, services.engine, services.clinic().retention, services.clock.now()
        )
    except Exception:  # a job must survive a bad minute (the database restarting …)
        logger.exception("retention purge failed")
        return None


def schedule_privacy_jobs(scheduler: BaseScheduler, services: Services) -> None:
    scheduler.add_job(
        purge_expired_data,
        "interval",
        args=[services],
        minutes=services.settings.retention_interval_minutes,
        id="retention-purge",
        coalesce=True,
        max_instances=1,
    )
    scheduler.add_job(purge_expired_data, args=[services], id="retention-purge-at-start")
