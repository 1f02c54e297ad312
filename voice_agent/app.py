"""FastAPI application factory: services built once, background jobs in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from voice_agent import __version__
from voice_agent.confirmations.runner import ConfirmationRunner
from voice_agent.console.web import mount_console
from voice_agent.integrations.jobs import schedule_integration_jobs
from voice_agent.learning.jobs import schedule_learning_jobs
from voice_agent.logging_setup import install_log_privacy
from voice_agent.privacy.jobs import schedule_privacy_jobs
from voice_agent.services import CLINIC_REFRESH_SECONDS, Services, build_services
from voice_agent.settings import Settings, load_settings
from voice_agent.voice.session import VoiceRuntime
from voice_agent.voice.sip.runtime import sip_runtime
from voice_agent.web import (
    api,
    chat,
    chat_stream,
    health,
    openai_webhook,
    twilio_confirm,
    twilio_gather,
    twilio_sip,
    twilio_status,
    twilio_voice,
)
from voice_agent.web.limits import BodyLimitMiddleware, RateLimitMiddleware
from voice_agent.web.replay import ReplayGuard

logger = logging.getLogger(__name__)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field and the kind of error, never the value sent (which may be a
    patient's phone or name, or a probe meant to land in our logs)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": [str(part) for part in error.get("loc", ())], "type": str(error.get("type", ""))}
        for error in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback (patient data masked), answered without details."""
    logger.error(
        "unhandled %s on %s %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    return JSONResponse({"detail": "internal error"}, status_code=500)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app. Tests pass ready ``services`` (fixed clock, fakes); production passes none."""
    install_log_privacy()
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
        schedule_integration_jobs(  # outbox delivery, reconciliation
            scheduler, services.integrations, services.settings, services.booking.retry_due
        )
        schedule_privacy_jobs(scheduler, services)  # retention of patient data
        if services.learning is not None:  # settle offer sets, refresh and retrain models
            schedule_learning_jobs(
                scheduler,
                services.learning,
                services.engine,
                services.clinic,
                settings,
                services.calendar,
            )
        scheduler.add_job(
            app.state.confirmations.run_due_safely,
            "interval",
            seconds=settings.confirmation_interval_seconds,
            id="confirmations",
            coalesce=True,
            max_instances=1,
        )
        scheduler.add_job(
            _purge_processed_requests,
            "interval",
            hours=6,
            id="purge-processed-requests",
            coalesce=True,
            max_instances=1,
        )
        scheduler.add_job(  # a clinic version saved by another process (console, CLI)
            services.clinic.refresh_safely,
            "interval",
            seconds=CLINIC_REFRESH_SECONDS,
            id="clinic-refresh",
            coalesce=True,
            max_instances=1,
        )
        # Once, now: appointments booked before confirmations were on get their steps.
        scheduler.add_job(app.state.confirmations.plan_missing_safely, id="confirmations-plan")
        scheduler.start()
        app.state.scheduler = scheduler  # /readyz checks it runs
        if settings.twilio_enabled and not settings.public_url:
            logger.warning(
                "VOICE_AGENT_PUBLIC_URL is not set: every Twilio route answers 503, since "
                "signatures are checked against it and never against a client's headers"
            )
        if settings.insecure_skip_twilio_signature:
            logger.warning(
                "VOICE_AGENT_INSECURE_SKIP_TWILIO_SIGNATURE is on: Twilio requests are NOT "
                "verified. Never run like this in production."
            )
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            if app.state.sip is not None:  # its calls' last rows go through the voice writer
                await app.state.sip.close()
            await app.state.voice.close()
            if owned:
                services.close()

    def _purge_processed_requests() -> None:
        ReplayGuard(services.engine).purge(services.clock.now())

    app = FastAPI(title="Voice receptionist", version=__version__, lifespan=lifespan)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
    # Outermost first: refuse floods before anything is read, then oversize bodies before parsing.
    app.add_middleware(BodyLimitMiddleware)
    if settings.rate_limit_scale > 0:
        app.add_middleware(RateLimitMiddleware, scale=settings.rate_limit_scale)
    app.state.services = services
    app.state.settings = settings
    app.state.voice = VoiceRuntime(services)
    voice = app.state.voice
    app.state.sip = sip_runtime(services, voice.tokens, voice.registry, voice.recorder)
    app.state.confirmations = ConfirmationRunner(services, app.state.voice.twilio_client)
    app.include_router(api.router)
    app.include_router(twilio_voice.router)
    app.include_router(chat.router)
    app.include_router(chat_stream.router)
    app.include_router(twilio_gather.router)
    app.include_router(twilio_confirm.router)
    app.include_router(twilio_status.router)
    app.include_router(openai_webhook.router)  # the openai_sip transport's calls
    app.include_router(twilio_sip.router)
    app.include_router(health.router)  # /healthz, /readyz, /metrics
    mount_console(app, services, settings)  # the staff console under /console
    return app
