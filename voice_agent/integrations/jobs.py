"""Background jobs of the integrations, run by the app's APScheduler in every process: outbox
delivery (rows are claimed, so processes share the work), retries of requests the clinic's API
has not answered yet (claimed the same way) and calendar reconciliation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.base import BaseScheduler

from voice_agent.integrations.setup import Integrations
from voice_agent.settings import Settings

logger = logging.getLogger(__name__)


def schedule_integration_jobs(
    scheduler: BaseScheduler,
    integrations: Integrations | None,
    settings: Settings,
    retry_backend_due: Callable[[], Awaitable[dict[str, int]]],
) -> None:
    """``retry_backend_due`` is the booking service's ``retry_due`` (the domain layer above
    hands it in, so this module stays below it)."""
    if integrations is None:
        return

    async def deliver() -> None:
        try:
            report = await integrations.outbox.drain(max_rounds=10)
        except Exception:  # a job must survive a bad minute (the database restarting …)
            logger.exception("outbox delivery failed")
            return
        if report.claimed:
            logger.info(
                "outbox: %s delivered, %s retried, %s dead",
                report.delivered,
                report.retried,
                report.dead,
            )

    scheduler.add_job(
        deliver,
        "interval",
        seconds=settings.outbox_interval_seconds,
        id="outbox-delivery",
        coalesce=True,
        max_instances=1,
    )

    async def retry_backend() -> None:
        """Requests the clinic's system has not answered yet, tried again with backoff."""
        try:
            report = await retry_backend_due()
        except Exception:
            logger.exception("retrying clinic API requests failed")
            return
        if any(report.values()):
            logger.info("clinic API requests retried: %s", report)

    scheduler.add_job(
        retry_backend,
        "interval",
        seconds=settings.outbox_interval_seconds,
        id="backend-intents",
        coalesce=True,
        max_instances=1,
    )
    reconciler = integrations.reconciler
    if reconciler is None:
        return

    async def reconcile() -> None:
        try:
            await reconciler.run()
        except Exception:
            logger.exception("calendar reconciliation failed")

    scheduler.add_job(
        reconcile,
        "interval",
        minutes=settings.reconcile_interval_minutes,
        id="calendar-reconcile",
        coalesce=True,
        max_instances=1,
    )
