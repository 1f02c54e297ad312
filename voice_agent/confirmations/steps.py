"""Confirmation steps in the database: planned with the booking, claimed once, settled once.

Planning is an interaction hook, so steps are written in the same transaction as the booking,
reschedule, cancellation or confirmation that changes them: a step never outlives the time it
was planned for. Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (the write lock on
SQLite), and every later transition is a guarded UPDATE, so a retried Twilio callback or a
second process finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlmodel import Session, col

from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.confirmations.planning import PlannedStep, plan_steps
from voice_agent.integrations.whatsapp import last_inbound
from voice_agent.interactions import InteractionLog
from voice_agent.store.confirmation_tables import ConfirmationStep, StepStatus
from voice_agent.store.db import advisory_xact_lock, is_sqlite, transaction
from voice_agent.store.tables import Appointment, AppointmentStatus, Interaction, InteractionKind

FALLBACK_SEQ = 99
MANUAL_SEQ = 100
ERROR_RETRY = "error_retry"
REMINDER_CHANNEL = "outbound"
"""Channel of the reminder interactions: not ``whatsapp``, which means the patient wrote to us."""


@dataclass(frozen=True)
class ClaimedStep:
    id: int
    appointment_id: str
    via: str
    seq: int
    attempts: int
    claimed_at: datetime
    recovering: bool
    """The previous run of this attempt died or failed midway: the message or call may exist."""
    errors: int = 0


class StepPlanner:
    """The interaction hook that plans, moves and settles an appointment's steps."""

    def __init__(self, clinic: Callable[[], Clinic], clock: Clock) -> None:
        self._clinic = clinic
        self._clock = clock

    def __call__(self, session: Session, interaction: Interaction) -> None:
        appointment_id = interaction.appointment_id
        if appointment_id is None:
            return
        kind = interaction.kind
        now = self._clock.now()
        if kind == InteractionKind.reschedule:
            settle_open(session, appointment_id, "rescheduled", now)
        if kind in (InteractionKind.booking, InteractionKind.reschedule):
            appointment = session.get(Appointment, appointment_id)
            if appointment is not None and appointment.status == AppointmentStatus.booked:
                _add_steps(
                    session, appointment_id, plan_steps(self._clinic(), appointment.start, now), now
                )
        elif kind == InteractionKind.cancellation:
            settle_open(session, appointment_id, "cancelled", now)
        elif kind == InteractionKind.confirmation:
            settle_open(session, appointment_id, "confirmed", now)

    def plan_missing(self, engine: Engine) -> int:
        """Plan steps for future booked appointments that have none; returns how many got some.

        Appointments booked before confirmations were switched on (or before this feature
        existed) were never planned. Run at start and by ``voice-agent confirmations
        --plan-missing``; every run takes one lock, so processes starting together plan an
        appointment once.
        """
        clinic = self._clinic()
        if not clinic.confirmations.enabled:
            return 0
        now = self._clock.now()
        planned = 0
        with transaction(engine) as session:
            advisory_xact_lock(session, "confirmations:plan-missing")
            has_steps = select(col(ConfirmationStep.id)).where(
                col(ConfirmationStep.appointment_id) == col(Appointment.id)
            )
            missing = session.execute(
                select(Appointment).where(
                    col(Appointment.status) == AppointmentStatus.booked,
                    col(Appointment.start) > now,
                    ~has_steps.exists(),
                )
            ).scalars()
            for appointment in missing.all():
                steps = plan_steps(clinic, appointment.start, now, booked_at=appointment.created_at)
                _add_steps(session, appointment.id, steps, now)
                planned += bool(steps)
        return planned


def _add_steps(
    session: Session, appointment_id: str, steps: list[PlannedStep], now: datetime
) -> None:
    for step in steps:
        session.add(
            ConfirmationStep(
                appointment_id=appointment_id,
                seq=step.seq,
                via=step.via,
                due_at=step.due_at,
                created_at=now,
                updated_at=now,
            )
        )


def settle_open(session: Session, appointment_id: str, outcome: str, now: datetime) -> None:
    """The appointment changed: a step under way is done with ``outcome``; pending ones vanish."""
    base = update(ConfirmationStep).where(col(ConfirmationStep.appointment_id) == appointment_id)
    session.execute(
        base.where(
            col(ConfirmationStep.status).in_((StepStatus.running, StepStatus.waiting))
        ).values(status=StepStatus.done, outcome=outcome, lease_until=None, updated_at=now)
    )
    session.execute(
        base.where(col(ConfirmationStep.status) == StepStatus.pending).values(
            status=StepStatus.cancelled, outcome=outcome, updated_at=now
        )
    )


class StepStore:
    """Every read and transition of steps (synchronous: callers use ``asyncio.to_thread``)."""

    def __init__(self, engine: Engine, interactions: InteractionLog) -> None:
        self._engine = engine
        self._log = interactions

    # Claiming ---------------------------------------------------------------------------------

    def claim_due(
        self,
        now: datetime,
        worker: str,
        *,
        limit: int = 10,
        lease: timedelta = timedelta(minutes=3),
        step_id: int | None = None,
    ) -> list[ClaimedStep]:
        """Claim due steps (or one step by id) for ``lease``; steps of dead claims come back."""
        with transaction(self._engine) as session:
            due = or_(
                and_(
                    col(ConfirmationStep.status) == StepStatus.pending,
                    col(ConfirmationStep.due_at) <= now,
                ),
                and_(
                    col(ConfirmationStep.status) == StepStatus.running,
                    col(ConfirmationStep.lease_until) < now,
                ),
            )
            query = select(ConfirmationStep).where(due)
            if step_id is not None:
                query = query.where(col(ConfirmationStep.id) == step_id)
            query = query.order_by(col(ConfirmationStep.due_at)).limit(limit)
            if not is_sqlite(self._engine):
                query = query.with_for_update(skip_locked=True)
            claimed = []
            for step in session.execute(query).scalars():
                recovering = step.status == StepStatus.running or step.outcome == ERROR_RETRY
                if not recovering:
                    step.attempts += 1
                    step.claimed_at = now
                step.status = StepStatus.running
                step.claimed_by = worker
                step.lease_until = now + lease
                step.updated_at = now
                session.add(step)
                claimed.append(
                    ClaimedStep(
                        id=step.id or 0,
                        appointment_id=step.appointment_id,
                        via=step.via,
                        seq=step.seq,
                        attempts=step.attempts,
                        claimed_at=step.claimed_at or now,
                        recovering=recovering,
                        errors=step.errors,
                    )
                )
            return claimed

    # Transitions of a claimed step ------------------------------------------------------------

    def update_claimed(
        self,
        step: ClaimedStep,
        worker: str,
        now: datetime,
        event: dict[str, Any] | None = None,
        **values: Any,
    ) -> bool:
        """Move a step this worker holds; False if it was settled meanwhile."""
        with transaction(self._engine) as session:
            result = session.execute(
                update(ConfirmationStep)
                .where(
                    col(ConfirmationStep.id) == step.id,
                    col(ConfirmationStep.status) == StepStatus.running,
                    col(ConfirmationStep.claimed_by) == worker,
                )
                .values(updated_at=now, **values)
            )
            changed = bool(result.rowcount)  # type: ignore[attr-defined]
            if changed and event is not None:
                self._record(session, step.appointment_id, event)
            return changed

    def update_call(
        self,
        step_id: int,
        call_sid: str,
        now: datetime,
        *,
        statuses: tuple[StepStatus, ...] = (StepStatus.running, StepStatus.waiting),
        event: dict[str, Any] | None = None,
        **values: Any,
    ) -> bool:
        """A Twilio callback moves the step of this call, once (retried callbacks find nothing)."""
        with transaction(self._engine) as session:
            result = session.execute(
                update(ConfirmationStep)
                .where(
                    col(ConfirmationStep.id) == step_id,
                    or_(
                        col(ConfirmationStep.call_sid) == call_sid,
                        col(ConfirmationStep.call_sid).is_(None),
                    ),
                    col(ConfirmationStep.status).in_(statuses),
                )
                .values(updated_at=now, call_sid=call_sid, **values)
            )
            changed = bool(result.rowcount)  # type: ignore[attr-defined]
            if changed and event is not None:
                step = session.get(ConfirmationStep, step_id)
                assert step is not None
                self._record(session, step.appointment_id, event)
            return changed

    def settle_reply(self, appointment_id: str, outcome: str, now: datetime) -> bool:
        """A WhatsApp reply closes the appointment's waiting requests (if no booking change did)."""
        with transaction(self._engine) as session:
            result = session.execute(
                update(ConfirmationStep)
                .where(
                    col(ConfirmationStep.appointment_id) == appointment_id,
                    col(ConfirmationStep.via) == "whatsapp",
                    col(ConfirmationStep.status) == StepStatus.waiting,
                )
                .values(status=StepStatus.done, outcome=outcome, updated_at=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def add(self, appointment_id: str, via: str, due_at: datetime, seq: int, now: datetime) -> int:
        with transaction(self._engine) as session:
            step = ConfirmationStep(
                appointment_id=appointment_id,
                via=via,
                seq=seq,
                due_at=due_at,
                created_at=now,
                updated_at=now,
            )
            session.add(step)
            session.flush()
            assert step.id is not None
            return step.id

    def _record(self, session: Session, appointment_id: str, event: dict[str, Any]) -> None:
        appointment = session.get(Appointment, appointment_id)
        self._log.record_in(
            session,
            InteractionKind.reminder,
            channel=REMINDER_CHANNEL,
            patient_id=appointment.patient_id if appointment else None,
            appointment_id=appointment_id,
            details=event,
        )

    def expire_unanswered(self, now: datetime) -> int:
        """WhatsApp requests whose appointment has begun will get no useful answer any more."""
        started = select(col(Appointment.id)).where(col(Appointment.start) <= now)
        with transaction(self._engine) as session:
            result = session.execute(
                update(ConfirmationStep)
                .where(
                    col(ConfirmationStep.status) == StepStatus.waiting,
                    col(ConfirmationStep.via) == "whatsapp",
                    col(ConfirmationStep.appointment_id).in_(started),
                )
                .values(status=StepStatus.done, outcome="no_reply", updated_at=now)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def silent_calls(self, older_than: datetime, limit: int = 20) -> list[ConfirmationStep]:
        """Call steps still waiting long after they were placed: a status callback was lost."""
        with transaction(self._engine) as session:
            return list(
                session.execute(
                    select(ConfirmationStep)
                    .where(
                        col(ConfirmationStep.status) == StepStatus.waiting,
                        col(ConfirmationStep.via) == "call",
                        col(ConfirmationStep.updated_at) < older_than,
                    )
                    .limit(limit)
                ).scalars()
            )

    # Reads ------------------------------------------------------------------------------------

    def get(self, step_id: int) -> ConfirmationStep | None:
        with transaction(self._engine) as session:
            return session.get(ConfirmationStep, step_id)

    def by_call(self, call_sid: str) -> ConfirmationStep | None:
        with transaction(self._engine) as session:
            return session.execute(
                select(ConfirmationStep).where(col(ConfirmationStep.call_sid) == call_sid)
            ).scalar_one_or_none()

    def waiting_whatsapp(self, patient_id: str) -> ConfirmationStep | None:
        """The patient's latest WhatsApp request still waiting for a reply."""
        with transaction(self._engine) as session:
            return session.execute(
                select(ConfirmationStep)
                .join(Appointment, col(Appointment.id) == ConfirmationStep.appointment_id)
                .where(
                    col(Appointment.patient_id) == patient_id,
                    col(ConfirmationStep.via) == "whatsapp",
                    col(ConfirmationStep.status) == StepStatus.waiting,
                )
                .order_by(col(ConfirmationStep.updated_at).desc())
                .limit(1)
            ).scalar_one_or_none()

    def has_step(self, appointment_id: str, seq: int) -> bool:
        with transaction(self._engine) as session:
            return (
                session.execute(
                    select(col(ConfirmationStep.id)).where(
                        col(ConfirmationStep.appointment_id) == appointment_id,
                        col(ConfirmationStep.seq) == seq,
                    )
                ).first()
                is not None
            )

    def listing(
        self, *, status: str | None = None, appointment_id: str | None = None, limit: int = 100
    ) -> list[ConfirmationStep]:
        with transaction(self._engine) as session:
            query = select(ConfirmationStep)
            if status is not None:
                query = query.where(col(ConfirmationStep.status) == status)
            if appointment_id is not None:
                query = query.where(col(ConfirmationStep.appointment_id) == appointment_id)
            query = query.order_by(col(ConfirmationStep.due_at).desc()).limit(limit)
            return list(session.execute(query).scalars())

    def last_inbound_whatsapp(self, patient_id: str) -> datetime | None:
        with transaction(self._engine) as session:
            return last_inbound(session, patient_id)

    def counts(self) -> dict[str, int]:
        """Steps per status (for the CLI), counted by the database."""
        with transaction(self._engine) as session:
            rows = session.execute(
                select(col(ConfirmationStep.status), func.count()).group_by(
                    col(ConfirmationStep.status)
                )
            )
            return {str(status): int(count) for status, count in rows}


def event_details(via: str, event: str, step_id: int, **extra: Any) -> dict[str, Any]:
    """The interaction row of a step event (no patient data: the row links the appointment)."""
    return {"via": via, "event": event, "step": step_id, **extra}
