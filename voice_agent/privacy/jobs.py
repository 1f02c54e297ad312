"""The retention job, run by the app's APScheduler in every process (a purge is idempotent, so
two processes purging together only find less to delete)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.privacy.retention import PurgeReport, purge
from voice_agent.settings import Settings


class RetentionDeps(Protocol):
    """The database, the clinic's retention policy, the clock and the job's interval."""

    @property
    def engine(self) -> Engine: ...

    @property
    def clinic(self) -> Callable[[], Clinic]: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def settings(self) -> Settings: ...


logger = logging.getLogger(__name__)


async def purge_expired_data(services: RetentionDeps) -> PurgeReport | None:
    """One purge against the injected clock; a failure is logged and retried next time."""
    try:
        return await asyncio.to_thread(
            purge, services.engine, services.clinic().retention, services.clock.now()
        )
    except Exception:  # a job must survive a bad minute (the database restarting …)
        logger.exception("retention purge failed")
        return None


def schedule_privacy_jobs(scheduler: BaseScheduler, services: RetentionDeps) -> None:
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
