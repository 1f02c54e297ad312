"""Wiring: build every service once from settings. Channels and the CLI receive `Services`."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from voice_agent.alerts import Alerter
from voice_agent.calendars.base import CalendarBackend
from voice_agent.clinic.loader import load_clinic_file
from voice_agent.clinic.model import Clinic
from voice_agent.clinic.repository import load_active_clinic, save_clinic
from voice_agent.clinic.versions import latest_version_id, version
from voice_agent.clock import Clock, SystemClock
from voice_agent.confirmations.steps import StepPlanner
from voice_agent.crypto.binding import configure_keys
from voice_agent.errors import ConfigurationError
from voice_agent.identity import IdentityService
from voice_agent.identity.sender import CodeSender
from voice_agent.identity.texts import IdentityTexts
from voice_agent.integrations.outbox import Outbox
from voice_agent.integrations.setup import Integrations, build_integrations
from voice_agent.interactions import InteractionLog
from voice_agent.learning.setup import Learning, build_learning
from voice_agent.patients.service import PatientService
from voice_agent.scheduling.booking import BookingService
from voice_agent.scheduling.notices import IntentNotices
from voice_agent.settings import Settings
from voice_agent.store.db import make_engine
from voice_agent.store.migrate import upgrade
from voice_agent.worklist.feed import WorkFeed
from voice_agent.worklist.service import Worklist

logger = logging.getLogger(__name__)


CLINIC_REFRESH_SECONDS = 5
"""How often the app checks for a clinic version saved by another process (a scheduler job)."""


class ClinicHolder:
    """The clinic in force, as the newest ``clinic_version`` row says.

    Held in memory: reading it costs nothing and never touches the database (it is read inside
    booking transactions, where a second connection would wait for the first on SQLite). The
    process that saves a version calls ``reload()`` and answers with it at once; the app's
    scheduler calls ``refresh_safely()`` every ``CLINIC_REFRESH_SECONDS``, outside any
    transaction, so a price changed in another process (the console behind a load balancer, the
    CLI) is what the receptionist says a few seconds later, without a restart.
    """

    def __init__(self, engine: Engine, timezone_override: str | None) -> None:
        self._engine = engine
        self._override = timezone_override
        self._lock = threading.Lock()
        self._clinic: Clinic | None = None
        self._version: int | None = None

    def __call__(self) -> Clinic:
        clinic = self._clinic
        if clinic is None:
            with self._lock:
                clinic = self._clinic or self.reload()
        return clinic

    def refresh(self) -> bool:
        """Load the newest version if another process saved one; True if it changed."""
        latest = latest_version_id(self._engine)
        if latest is None or latest == self._version:
            return False
        with self._lock:
            self.reload()
        return True

    async def refresh_safely(self) -> None:
        """The scheduler's job: a database that cannot be read keeps the clinic held."""
        try:
            if await asyncio.to_thread(self.refresh):
                logger.info("clinic version %s in force", self._version)
        except Exception:
            logger.warning("could not check the clinic version; keeping the one held")

    @property
    def version_id(self) -> int | None:
        """The ``clinic_version`` row in force in this process."""
        return self._version

    def reload(self) -> Clinic:
        found = version(self._engine)
        if found is None:
            raise ConfigurationError(
                "no clinic loaded: run `voice-agent clinic load FILE` "
                "or set VOICE_AGENT_CLINIC_FILE"
            )
        info, clinic = found
        if self._override:
            data = clinic.model_dump()
            data["timezone"] = self._override
            clinic = Clinic.model_validate(data)
        self._clinic, self._version = clinic, info.id
        return clinic


@dataclass
class Services:
    settings: Settings
    engine: Engine
    clinic: ClinicHolder
    clock: Clock
    patients: PatientService
    booking: BookingService
    calendar: CalendarBackend
    interactions: InteractionLog
    alerter: Alerter
    identity: IdentityService
    """Codes and birth-date checks for callers the carrier did not verify."""
    worklist: Worklist
    """The staff's to-do queue, fed at the source (interaction and dead-letter hooks)."""
    integrations: Integrations | None = None
    step_planner: StepPlanner | None = None
    """Plans confirmation steps with each booking (an interaction hook); also plans late ones."""
    learning: Learning | None = None
    """Learned offer ranking, the decisions it learns from, and no-show risk."""

    @property
    def outbox(self) -> Outbox:
        """Side effects delivered after commit (calendar, Sheets, WhatsApp, alerts)."""
        assert self.integrations is not None
        return self.integrations.outbox

    def close(self) -> None:
        self.engine.dispose()


def prepare_database(settings: Settings, engine: Engine) -> None:
    """Migrate the schema and, on a fresh database, load the configured clinic file."""
    upgrade(engine)
    if load_active_clinic(engine) is None:
        clinic = load_clinic_file(settings.clinic_file)
        save_clinic(engine, clinic, str(settings.clinic_file))
        logger.info("loaded clinic %r from %s", clinic.name, settings.clinic_file)
        return
    from voice_agent.startup import clinic_file_drift

    drift = clinic_file_drift(settings, engine)
    if drift:
        logger.warning(drift)


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    alerter: Alerter | None = None,
    calendar: CalendarBackend | None = None,
    engine: Engine | None = None,
) -> Services:
    engine = engine or make_engine(settings.database_url)
    configure_keys(engine, settings)  # before the migrations, which encrypt old rows
    prepare_database(settings, engine)
    clock = clock or SystemClock()
    holder = ClinicHolder(engine, settings.timezone)
    clinic = holder()
    interactions = InteractionLog(engine, clock)
    learning = build_learning(settings, engine, holder, clock)
    interactions.add_hook(learning.recorder.on_interaction)  # a booked offer settles its set
    step_planner = StepPlanner(holder, clock, learning.risk.risk_of)
    interactions.add_hook(step_planner)  # confirmation steps move with bookings
    feed = WorkFeed(clock)
    interactions.add_hook(feed.on_interaction)  # what needs a person, in the same transaction
    integrations = build_integrations(
        settings, engine, holder, clock, interactions, alerter=alerter, calendar=calendar
    )
    calendar = integrations.calendar
    notices = IntentNotices(
        engine,
        integrations.outbox,
        holder,
        settings.prompts_dir,
        sender=integrations.extras.get("whatsapp"),
        alert=integrations.alerter.alert,
    )
    integrations.outbox.register(notices)
    integrations.outbox.on_dead_letter(feed.on_dead_letter)
    feed.backfill(engine)  # what needed a person before the to-do existed
    booking = BookingService(
        engine,
        holder,
        calendar,
        interactions,
        clock,
        hold_minutes=settings.hold_minutes,
        alert=integrations.alerter.alert,
        notify=notices.enqueue_in,
        scorer=learning.scorer,
        recorder=learning.recorder,
    )
    return Services(
        settings=settings,
        engine=engine,
        clinic=holder,
        clock=clock,
        patients=PatientService(engine, clinic.country),
        booking=booking,
        calendar=calendar,
        interactions=interactions,
        alerter=integrations.alerter,
        identity=IdentityService(
            engine,
            clock,
            IdentityTexts(settings.prompts_dir),
            _code_sender(settings),
            lambda: holder().name,
        ),
        worklist=Worklist(engine, clock),
        integrations=integrations,
        step_planner=step_planner,
        learning=learning,
    )


def _code_sender(settings: Settings) -> CodeSender | None:
    """Verification codes go out through Twilio when a WhatsApp or SMS sender is configured."""
    routes = settings.twilio_whatsapp_from or settings.twilio_from_number
    if not (settings.twilio_enabled and routes):
        return None
    from voice_agent.integrations.twilio_rest import make_twilio_client

    client = make_twilio_client(settings)
    if client is None:
        return None
    return CodeSender(
        client,
        whatsapp_from=settings.twilio_whatsapp_from,
        sms_from=settings.twilio_from_number,
        whatsapp_template_sid=settings.whatsapp_code_template_sid,
    )
