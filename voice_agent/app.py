"""FastAPI application factory: services built once, background jobs in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI

from voice_agent import __version__
from voice_agent.confirmations.runner import ConfirmationRunner
from voice_agent.integrations.jobs import schedule_integration_jobs
from voice_agent.privacy.jobs import schedule_privacy_jobs
from voice_agent.services import Services, build_services
from voice_agent.settings import Settings, load_settings
from voice_agent.web import (
    api,
    chat,
    health,
    twilio_confirm,
    twilio_gather,
    twilio_status,
    twilio_voice,
)

logger = logging.getLogger("voice_agent")


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app. Tests pass ready ``services`` (fixed clock, fakes); production passes none."""
    settings = settings or (services.settings if services else load_settings())
    owned = services is None
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(
            services.booking.purge_expired_holds,
            "interval",
            minutes=1,
            id="purge-holds",
            coalesce=True,
            max_instances=1,
        )
        schedule_integration_jobs(scheduler, services)  # outbox delivery, reconciliation
        schedule_privacy_jobs(scheduler, services)  # retention of patient data
        scheduler.add_job(
            app.state.confirmations.run_due_safely,
            "interval",
            seconds=settings.confirmation_interval_seconds,
            id="confirmations",
            coalesce=True,
            max_instances=1,
        )
        # Once, now: appointments booked before confirmations were on get their steps.
        scheduler.add_job(app.state.confirmations.plan_missing_safely, id="confirmations-plan")
        scheduler.start()
        app.state.scheduler = scheduler  # /readyz checks it runs
        if settings.insecure_skip_twilio_signature:
            logger.warning(
                "VOICE_AGENT_INSECURE_SKIP_TWILIO_SIGNATURE is on: Twilio requests are NOT "
                "verified. Never run like this in production."
            )
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            await app.state.voice.close()
            if owned:
                services.close()

    app = FastAPI(title="Voice receptionist", version=__version__, lifespan=lifespan)
    app.state.services = services
    app.state.settings = settings
    app.state.voice = twilio_voice.VoiceRuntime(services)
    app.state.confirmations = ConfirmationRunner(services, app.state.voice.twilio_client)
    app.include_router(api.router)
    app.include_router(twilio_voice.router)
    app.include_router(chat.router)
    app.include_router(twilio_gather.router)
    app.include_router(twilio_confirm.router)
    app.include_router(twilio_status.router)
    app.include_router(health.router)  # /healthz, /readyz, /metrics
    return app
