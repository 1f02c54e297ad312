"""Identity checks of one conversation or call: send a code, check a code or a birth date.

One row per conversation (``identity_check``): a new code replaces the last one, wrong answers
add up and never reset within the conversation, and the codes sent to one patient and the wrong
answers given for them are capped across conversations, so neither a new chat session nor a new
call buys more guesses. Every time comes from the injected clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from voice_agent.clock import Clock
from voice_agent.identity.codes import code_matches, hash_code, new_code, new_salt
from voice_agent.identity.sender import CodeNotSent, CodeSender
from voice_agent.identity.texts import IdentityTexts
from voice_agent.patients.service import mask_phone
from voice_agent.store.db import read_session, transaction
from voice_agent.store.identity_tables import IdentityCheck
from voice_agent.store.tables import Patient

SendStatus = Literal["sent", "pending", "rate_limited", "locked", "unavailable", "failed"]
CheckStatus = Literal["verified", "wrong", "expired", "no_code", "locked", "no_birth_date"]


@dataclass(frozen=True)
class IdentityPolicy:
    code_minutes: int = 5
    max_attempts: int = 5
    """Wrong codes and birth dates in one conversation before it is locked."""
    resend_after_seconds: int = 60
    """A second "send me the code" within this time does not send another."""
    max_sends_per_conversation: int = 3
    max_sends_per_patient_hour: int = 5
    max_failures_per_patient_day: int = 10


@dataclass(frozen=True)
class SendOutcome:
    status: SendStatus
    route: str | None = None
    """whatsapp | sms"""
    masked_phone: str = ""
    minutes: int = 0


@dataclass(frozen=True)
class CheckOutcome:
    status: CheckStatus
    attempts_left: int = 0


class IdentityService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        texts: IdentityTexts,
        sender: CodeSender | None,
        clinic_name: Callable[[], str],
        policy: IdentityPolicy | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._texts = texts
        self._sender = sender
        self._clinic_name = clinic_name
        self.policy = policy or IdentityPolicy()

    @property
    def can_send_codes(self) -> bool:
        return self._sender is not None and bool(self._sender.routes)

    async def verified_by(self, conversation_id: str, patient_id: str) -> str | None:
        """``code`` or ``birth_date`` when this conversation proved it is this patient."""

        def _read() -> str | None:
            with read_session(self._engine) as session:
                row = _row(session, conversation_id)
                if row is not None and row.verified_patient_id == patient_id:
                    return row.verified_by
                return None

        return await asyncio.to_thread(_read)

    # Codes -------------------------------------------------------------------------------------

    async def send_code(
        self, conversation_id: str, channel: str, patient: Patient, language: str
    ) -> SendOutcome:
        """Send a new code to the patient's phone on file (or say why not)."""
        masked = mask_phone(patient.phone)
        if not self.can_send_codes:
            return SendOutcome("unavailable", masked_phone=masked)
        code = new_code()
        status, route = await asyncio.to_thread(
            self._store_code, conversation_id, channel, patient.id, code
        )
        if status != "sent":
            return SendOutcome(status, route, masked, self.policy.code_minutes)
        body = self._texts.say(
            language,
            "code_message",
            code=code,
            clinic=self._clinic_name(),
            minutes=self.policy.code_minutes,
        )
        assert self._sender is not None
        try:
            route = await self._sender.send(patient.phone, body, code)
        except CodeNotSent:
            return SendOutcome("failed", masked_phone=masked)
        await asyncio.to_thread(self._note_route, conversation_id, route)
        return SendOutcome("sent", route, masked, self.policy.code_minutes)

    def _store_code(
        self, conversation_id: str, channel: str, patient_id: str, code: str
    ) -> tuple[SendStatus, str | None]:
        policy, now = self.policy, self._clock.now()
        salt = new_salt()
        digest = hash_code(code, salt)  # slow on purpose: before the transaction takes locks
        with transaction(self._engine) as session:
            row = _claim(session, conversation_id, channel, patient_id, now)
            if self._locked(session, row, patient_id):
                return "locked", None
            same = row.patient_id == patient_id and row.code_hash is not None
            if (
                same
                and row.sent_at is not None
                and row.expires_at is not None
                and row.expires_at > now
                and now - row.sent_at < timedelta(seconds=policy.resend_after_seconds)
            ):
                return "pending", row.route
            if row.sends >= policy.max_sends_per_conversation:
                return "rate_limited", None
            hour_ago = now - timedelta(hours=1)
            sent_lately = session.execute(
                select(func.coalesce(func.sum(IdentityCheck.sends), 0)).where(
                    col(IdentityCheck.patient_id) == patient_id,
                    col(IdentityCheck.sent_at) > hour_ago,
                )
            ).scalar_one()
            if sent_lately >= policy.max_sends_per_patient_hour:
                return "rate_limited", None
            row.patient_id = patient_id
            row.code_salt = salt
            row.code_hash = digest
            row.sent_at = now
            row.expires_at = now + timedelta(minutes=policy.code_minutes)
            row.sends += 1
            row.updated_at = now
            session.add(row)
            return "sent", None

    def _note_route(self, conversation_id: str, route: str) -> None:
        with transaction(self._engine) as session:
            row = _row(session, conversation_id)
            if row is not None:
                row.route = route
                session.add(row)

    async def check_code(self, conversation_id: str, patient_id: str, code: str) -> CheckOutcome:
        return await asyncio.to_thread(self._check_code, conversation_id, patient_id, code)

    def _check_code(self, conversation_id: str, patient_id: str, code: str) -> CheckOutcome:
        now = self._clock.now()
        with transaction(self._engine) as session:
            row = _row(session, conversation_id, lock=True)
            if row is None or row.patient_id != patient_id or row.code_hash is None:
                return CheckOutcome("no_code", self._left(row))
            if self._locked(session, row, patient_id):
                return CheckOutcome("locked")
            if row.expires_at is None or row.expires_at <= now:
                return CheckOutcome("expired", self._left(row))
            assert row.code_salt is not None
            if not code_matches(code, row.code_salt, row.code_hash):
                return self._wrong(session, row, now)
            row.code_hash = row.code_salt = None  # one use
            return self._verified(session, row, patient_id, "code", now)

    # Birth date --------------------------------------------------------------------------------

    async def check_birth_date(
        self, conversation_id: str, channel: str, patient: Patient, given: date
    ) -> CheckOutcome:
        return await asyncio.to_thread(
            self._check_birth_date, conversation_id, channel, patient, given
        )

    def _check_birth_date(
        self, conversation_id: str, channel: str, patient: Patient, given: date
    ) -> CheckOutcome:
        now = self._clock.now()
        with transaction(self._engine) as session:
            row = _claim(session, conversation_id, channel, patient.id, now)
            if self._locked(session, row, patient.id):
                return CheckOutcome("locked")
            if patient.birth_date is None:
                return CheckOutcome("no_birth_date", self._left(row))
            if row.patient_id != patient.id:
                row.patient_id, row.code_hash, row.code_salt = patient.id, None, None
            if given != patient.birth_date:
                return self._wrong(session, row, now)
            return self._verified(session, row, patient.id, "birth_date", now)

    # Shared ------------------------------------------------------------------------------------

    def _left(self, row: IdentityCheck | None) -> int:
        used = row.attempts if row is not None else 0
        return max(0, self.policy.max_attempts - used)

    def _locked(self, session: Session, row: IdentityCheck, patient_id: str) -> bool:
        if row.attempts >= self.policy.max_attempts:
            return True
        day_ago = self._clock.now() - timedelta(days=1)
        failures = session.execute(
            select(func.coalesce(func.sum(IdentityCheck.attempts), 0)).where(
                col(IdentityCheck.patient_id) == patient_id, col(IdentityCheck.updated_at) > day_ago
            )
        ).scalar_one()
        return bool(failures >= self.policy.max_failures_per_patient_day)

    def _wrong(self, session: Session, row: IdentityCheck, now: datetime) -> CheckOutcome:
        row.attempts += 1
        row.updated_at = now
        session.add(row)
        left = self._left(row)
        return CheckOutcome("wrong" if left else "locked", left)

    def _verified(
        self, session: Session, row: IdentityCheck, patient_id: str, how: str, now: datetime
    ) -> CheckOutcome:
        row.verified_patient_id, row.verified_by = patient_id, how
        row.verified_at = row.updated_at = now
        session.add(row)
        return CheckOutcome("verified", self._left(row))


def _row(session: Session, conversation_id: str, *, lock: bool = False) -> IdentityCheck | None:
    query = select(IdentityCheck).where(col(IdentityCheck.conversation_id) == conversation_id)
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def _claim(
    session: Session, conversation_id: str, channel: str, patient_id: str, now: datetime
) -> IdentityCheck:
    """This conversation's row, locked; created on first use (a racing insert wins)."""
    row = _row(session, conversation_id, lock=True)
    if row is not None:
        return row
    row = IdentityCheck(
        conversation_id=conversation_id,
        channel=channel[:16],
        patient_id=patient_id,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        found = _row(session, conversation_id, lock=True)
        assert found is not None
        return found
    return row
