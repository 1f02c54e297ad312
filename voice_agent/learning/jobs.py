"""The learning jobs, run by the app's APScheduler: settle undecided offer sets, pick up newly
promoted models, and retrain at night when enough new decisions came in.

Training in two processes at once would only store two versions; the nightly job takes an
advisory lock so one process trains and the others find nothing new afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine, func, select
from sqlmodel import col

from voice_agent.clinic.model import Clinic
from voice_agent.learning.attendance import AttendanceSource, sync_attendance
from voice_agent.learning.decisions import settle_abandoned
from voice_agent.learning.models import ModelStore
from voice_agent.learning.noshow import ATTENDED, NoShowReport, train_no_show
from voice_agent.learning.setup import Learning
from voice_agent.learning.training import RankingReport, count_decisions, train_ranking
from voice_agent.settings import Settings
from voice_agent.store.db import advisory_xact_lock, transaction
from voice_agent.store.learning_tables import ModelKind
from voice_agent.store.tables import Appointment, AppointmentStatus

logger = logging.getLogger(__name__)


@dataclass
class Retrained:
    ranking: RankingReport | None
    """None: not enough new decisions since the last model."""
    no_show: NoShowReport | None


def _marked_since(engine: Engine, after: datetime | None) -> int:
    query = (
        select(func.count())
        .select_from(Appointment)
        .where(col(Appointment.status).in_((AppointmentStatus.no_show, *ATTENDED)))
    )
    if after is not None:
        query = query.where(col(Appointment.start) > after)
    with transaction(engine) as session:
        return int(session.execute(query).scalar() or 0)


def retrain_if_due(
    engine: Engine, clinic: Clinic, settings: Settings, now: datetime, *, force: bool = False
) -> Retrained:
    """Train each model whose data grew by ``ranking_retrain_new_decisions`` since its last
    version (any amount with ``force``); the promotion rules decide whether it is used."""
    store = ModelStore(engine)
    wanted = 0 if force else settings.ranking_retrain_new_decisions
    last = store.history(ModelKind.ranking, limit=1)
    ranking = None
    if count_decisions(engine, after=last[0].trained_until if last else None) >= max(wanted, 1):
        ranking = train_ranking(
            engine, now, min_decisions=settings.ranking_min_decisions, store=store
        )
    last = store.history(ModelKind.no_show, limit=1)
    no_show = None
    if _marked_since(engine, last[0].trained_until if last else None) >= max(wanted, 1):
        no_show = train_no_show(
            engine, clinic, now, min_examples=settings.ranking_min_decisions, store=store
        )
    return Retrained(ranking, no_show)


def _nightly(engine: Engine, clinic: Clinic, settings: Settings, now: datetime) -> Retrained:
    with transaction(engine) as session:  # one process trains; the lock ends with it
        advisory_xact_lock(session, "learning:retrain")
        return retrain_if_due(engine, clinic, settings, now)


def schedule_learning_jobs(
    scheduler: BaseScheduler,
    learning: Learning,
    engine: Engine,
    clinic: Callable[[], Clinic],
    settings: Settings,
    calendar: object | None = None,
) -> None:
    """``calendar``: the backend; one that reports attendance (the clinic's REST API) is asked
    hourly whether the patients of the last week came."""
    clock = learning.clock

    async def settle() -> None:
        try:
            settled = await asyncio.to_thread(settle_abandoned, engine, clock.now())
        except Exception:  # a job must survive a bad minute (the database restarting …)
            logger.exception("settling offer sets failed")
            return
        if settled:
            logger.info("offer sets abandoned: %s", settled)

    async def refresh() -> None:
        try:
            await asyncio.to_thread(learning.refresh)
        except Exception:
            logger.exception("refreshing the learned models failed")

    async def retrain() -> None:
        try:
            done = await asyncio.to_thread(_nightly, engine, clinic(), settings, clock.now())
        except Exception:
            logger.exception("nightly retraining failed")
            return
        for name, report in (("ranking", done.ranking), ("no-show", done.no_show)):
            if report is not None:
                logger.info("%s model: %s", name, report.reason)
        await refresh()

    if isinstance(calendar, AttendanceSource):
        source = calendar

        async def attendance() -> None:
            try:
                marked = await asyncio.to_thread(sync_attendance, engine, source, clock.now())
            except Exception:
                logger.exception("reading attendance from the clinic's system failed")
                return
            if marked:
                logger.info("appointments marked from the clinic's system: %s", marked)

        scheduler.add_job(attendance, "interval", hours=1, id="learning-attendance", coalesce=True)
    scheduler.add_job(settle, "interval", minutes=5, id="learning-settle", coalesce=True)
    scheduler.add_job(refresh, "interval", minutes=1, id="learning-refresh", coalesce=True)
    scheduler.add_job(
        retrain,
        "cron",
        hour=settings.ranking_retrain_hour,
        minute=17,
        timezone=clinic().tz,
        id="learning-retrain",
        coalesce=True,
        max_instances=1,
    )
