"""Find or create patients by phone; validate names, e-mails and birth dates at the boundary."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, Engine, bindparam, select
from sqlmodel import col

from voice_agent.crypto.binding import engine_keyring
from voice_agent.errors import InvalidPatientData
from voice_agent.store.db import read_session, transaction
from voice_agent.store.prepared import Prepared
from voice_agent.store.tables import Patient
from voice_agent.store.types import utcnow


def normalize_phone(raw: str, region: str) -> str:
    """E.164 for a phone in any usual spelling (``whatsapp:`` prefix, spaces, local form)."""
    text = raw.strip().removeprefix("whatsapp:").removeprefix("sms:").strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPatientData("that does not look like a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPatientData("that phone number is not valid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidPatientData(f"that e-mail address is not valid: {exc}") from None


def normalize_name(raw: str) -> str:
    name = " ".join(raw.split())
    if len(name) < 2 or len(name) > 200 or not any(ch.isalpha() for ch in name):
        raise InvalidPatientData("please give the patient's full name")
    return name


def check_birth_date(value: date, today: date) -> date:
    if value > today:
        raise InvalidPatientData("the birth date is in the future")
    if value.year < today.year - 130:
        raise InvalidPatientData("that birth date is not plausible")
    return value


def mask_phone(e164: str) -> str:
    """For places where a phone must be shown but not revealed: +55 11 *****-4321 style."""
    if len(e164) <= 4:
        return "*" * len(e164)
    return e164[:3] + "*" * (len(e164) - 7) + e164[-4:]


_TABLE = Patient.__table__  # type: ignore[attr-defined]
_ON_FILE = Prepared(
    select(_TABLE.c.id, _TABLE.c.full_name, _TABLE.c.language).where(
        _TABLE.c.phone_hash == bindparam("digest")
    )
)
"""Built once and run on the driver (``store.prepared``): every text turn runs it."""


@dataclass(frozen=True)
class OnFile:
    """What a conversation needs of its caller's patient row: id, name and language."""

    id: str
    full_name: str | None
    language: str | None


@dataclass(frozen=True)
class Looked:
    """A caller's phone looked up with the conversation's state: who is on file for it
    (``None``: nobody, and nobody is created for that: a patient row is made when a tool needs
    one, not for a greeting)."""

    phone: str
    on_file: OnFile | None


class PatientService:
    """Patients are looked up by their verified phone number; nothing else identifies a caller.

    Phones are stored encrypted, so a look-up compares the keyed hash of the E.164 number
    (``patient.phone_hash``, unique), never the phone itself.
    """

    def __init__(self, engine: Engine, region: str) -> None:
        self._engine = engine
        self.region = region

    def phone_hash(self, e164: str) -> str:
        return engine_keyring(self._engine).lookup_hash(e164)

    async def find_or_create(self, phone: str, language: str | None = None) -> Patient:
        return await asyncio.to_thread(self._find_or_create, phone, language)

    def _find_or_create(self, phone: str, language: str | None) -> Patient:
        e164 = normalize_phone(phone, self.region)
        by_phone = select(Patient).where(col(Patient.phone_hash) == self.phone_hash(e164))
        with transaction(self._engine) as session:
            patient = session.execute(by_phone).scalar_one_or_none()
            if patient is not None:
                return patient
            patient = Patient(phone=e164, language=language)
            session.add(patient)
            try:
                session.flush()
            except Exception:
                session.rollback()
                return session.execute(by_phone).scalar_one()
            return patient

    def on_file(self, db: Connection, e164: str) -> OnFile | None:
        """The patient of ``e164``, if any, read on the caller's connection: one row by the
        phone's keyed hash (unique index), one column decrypted; no ORM object, no hop."""
        rows = _ON_FILE.rows(db, {"digest": self.phone_hash(e164)})
        return OnFile(*rows[0]) if rows else None

    async def get(self, patient_id: str) -> Patient | None:
        return await asyncio.to_thread(self._get, patient_id)

    def _get(self, patient_id: str) -> Patient | None:
        with read_session(self._engine) as session:
            return session.get(Patient, patient_id)

    async def find_by_phone(self, phone: str) -> Patient | None:
        e164 = normalize_phone(phone, self.region)
        return await asyncio.to_thread(self._find_by_phone, e164)

    def _find_by_phone(self, e164: str) -> Patient | None:
        by_phone = select(Patient).where(col(Patient.phone_hash) == self.phone_hash(e164))
        with read_session(self._engine) as session:
            return session.execute(by_phone).scalar_one_or_none()

    async def update(
        self,
        patient_id: str,
        *,
        full_name: str | None = None,
        email: str | None = None,
        birth_date: date | None = None,
        language: str | None = None,
        today: date | None = None,
    ) -> Patient:
        changes: dict[str, object] = {}
        if full_name is not None:
            changes["full_name"] = normalize_name(full_name)
        if email is not None:
            changes["email"] = normalize_email(email)
        if birth_date is not None:
            changes["birth_date"] = check_birth_date(birth_date, today or date.today())
        if language is not None:
            changes["language"] = language
        return await asyncio.to_thread(self._update, patient_id, changes)

    def _update(self, patient_id: str, changes: dict[str, object]) -> Patient:
        with transaction(self._engine) as session:
            patient = session.get(Patient, patient_id)
            if patient is None:
                raise InvalidPatientData("patient not found")
            for key, value in changes.items():
                setattr(patient, key, value)
            patient.updated_at = utcnow()
            session.add(patient)
            return patient
