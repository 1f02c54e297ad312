"""Staff accounts: create, check a password, sessions, login throttling, password change.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults, RFC 9106 low-memory profile).
The throttle counts failed attempts in the database, per account and per address, with the
injected clock: it holds across processes and restarts, and tests move time instead of sleeping.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, func
from sqlmodel import Session, col, select

from voice_agent.clock import Clock
from voice_agent.store.db import transaction
from voice_agent.store.staff_tables import (
    StaffAccount,
    StaffLoginAttempt,
    StaffRole,
    StaffSession,
)

SESSION_LIFETIME = timedelta(hours=12)
"""A working day: the receptionist logs in once per shift."""
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
"""Higher per address: a clinic's staff often share one public IP."""
MIN_PASSWORD_LENGTH = 10

PROFILES = ("RFC_9106_LOW_MEMORY", "RFC_9106_HIGH_MEMORY", "CHEAPEST")


def password_hasher(profile: str = "RFC_9106_LOW_MEMORY") -> PasswordHasher:
    """argon2id with one of argon2-cffi's named parameter sets (the setting
    ``staff_password_profile``); hashes made under another profile are upgraded at login."""
    if profile not in PROFILES:
        raise ValueError(f"unknown argon2 profile {profile!r}")
    return PasswordHasher.from_parameters(getattr(profiles, profile))


class AccountError(ValueError):
    """A refused account operation; ``code`` names an i18n key (``errors.<code>``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class StaffUser:
    """The logged-in staff member, as routes see them."""

    id: int
    email: str
    role: StaffRole
    doctor_id: str | None
    language: str | None
    csrf_token: str


@dataclass(frozen=True)
class NewSession:
    token: str
    """The cookie value (only its hash is stored)."""
    expires_at: datetime


def normalize_email(email: str) -> str:
    return email.strip().lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError("password_too_short")


class StaffAccounts:
    def __init__(self, engine: Engine, clock: Clock, hasher: PasswordHasher | None = None) -> None:
        self._engine = engine
        self._clock = clock
        self._hasher = hasher or password_hasher()
        self._dummy_hash: str | None = None

    def _dummy(self) -> str:
        """A hash verified when the e-mail is unknown, so that answer takes as long as a wrong
        password for a real account (no account discovery by timing)."""
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        return self._dummy_hash

    # -- accounts --------------------------------------------------------------------------
    def add(
        self,
        email: str,
        password: str,
        role: StaffRole | str,
        *,
        doctor_id: str | None = None,
        language: str | None = None,
    ) -> StaffAccount:
        email = normalize_email(email)
        try:
            role = StaffRole(role)
        except ValueError:
            raise AccountError("invalid_role") from None
        if "@" not in email:
            raise AccountError("invalid_email")
        if role is StaffRole.doctor and not doctor_id:
            raise AccountError("doctor_id_required")
        check_password_strength(password)
        with transaction(self._engine) as db:
            if db.exec(select(StaffAccount).where(StaffAccount.email == email)).first():
                raise AccountError("email_taken")
            now = self._clock.now()
            account = StaffAccount(
                email=email,
                password_hash=self._hasher.hash(password),
                role=role.value,
                doctor_id=doctor_id if role is StaffRole.doctor else None,
                language=language,
                created_at=now,
                password_changed_at=now,
            )
            db.add(account)
            db.flush()
            db.refresh(account)
            return account

    def list(self) -> list[StaffAccount]:
        with transaction(self._engine) as db:
            return list(db.exec(select(StaffAccount).order_by(col(StaffAccount.email))).all())

    def count(self) -> int:
        with transaction(self._engine) as db:
            return int(db.exec(select(func.count()).select_from(StaffAccount)).one())

    def set_active(self, staff_id: int, active: bool, *, by: int) -> None:
        """Disable (every session revoked at once) or enable an account; nobody disables
        himself, so a clinic cannot lock out its last administrator by mistake."""
        if staff_id == by and not active:
            raise AccountError("cannot_disable_self")
        with transaction(self._engine) as db:
            account = db.get(StaffAccount, staff_id)
            if account is None:
                raise AccountError("unknown_account")
            account.active = active
            db.add(account)
            if not active:
                db.execute(delete(StaffSession).where(col(StaffSession.staff_id) == staff_id))

    def set_language(self, staff_id: int, language: str | None) -> None:
        with transaction(self._engine) as db:
            account = db.get(StaffAccount, staff_id)
            if account is not None:
                account.language = language
                db.add(account)

    # -- login -----------------------------------------------------------------------------
    def throttled(self, email: str, address: str) -> bool:
        since = self._clock.now() - THROTTLE_WINDOW
        with transaction(self._engine) as db:
            return (
                self._failures(db, f"account:{normalize_email(email)}", since)
                >= MAX_FAILURES_PER_ACCOUNT
                or self._failures(db, f"address:{address}", since) >= MAX_FAILURES_PER_ADDRESS
            )

    @staticmethod
    def _failures(db: Session, key: str, since: datetime) -> int:
        query = (
            select(func.count())
            .select_from(StaffLoginAttempt)
            .where(StaffLoginAttempt.key == key, col(StaffLoginAttempt.at) >= since)
        )
        return int(db.exec(query).one())

    def login(self, email: str, password: str, address: str) -> NewSession:
        """A new session for the right password; ``AccountError`` otherwise (``throttled`` or
        ``bad_credentials``, the same answer for an unknown e-mail and a wrong password)."""
        email = normalize_email(email)
        if self.throttled(email, address):
            raise AccountError("throttled")
        now = self._clock.now()
        with transaction(self._engine) as db:
            account = db.exec(select(StaffAccount).where(StaffAccount.email == email)).first()
            if account is None or not account.active:
                self._verify(self._dummy(), password)
                ok = False
            else:
                ok = self._verify(account.password_hash, password)
            if not ok or account is None or account.id is None:
                db.add(StaffLoginAttempt(key=f"account:{email}", at=now))
                db.add(StaffLoginAttempt(key=f"address:{address}", at=now))
                cutoff = now - THROTTLE_WINDOW
                db.execute(delete(StaffLoginAttempt).where(col(StaffLoginAttempt.at) < cutoff))
                failed = True
            else:
                failed = False
                if self._hasher.check_needs_rehash(account.password_hash):
                    account.password_hash = self._hasher.hash(password)
                    db.add(account)
                mine = col(StaffLoginAttempt.key) == f"account:{email}"
                db.execute(delete(StaffLoginAttempt).where(mine))
                new = self._open_session(db, account.id, now)
        if failed:
            raise AccountError("bad_credentials")
        return new

    def _open_session(self, db: Session, staff_id: int, now: datetime) -> NewSession:
        token = secrets.token_urlsafe(32)
        expires = now + SESSION_LIFETIME
        db.add(
            StaffSession(
                token_hash=token_hash(token),
                staff_id=staff_id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=expires,
            )
        )
        db.execute(delete(StaffSession).where(col(StaffSession.expires_at) < now))
        return NewSession(token=token, expires_at=expires)

    def user_for(self, token: str | None) -> StaffUser | None:
        """The staff member of a live session, or None (unknown, expired, revoked, disabled)."""
        if not token:
            return None
        now = self._clock.now()
        with transaction(self._engine) as db:
            row = db.exec(
                select(StaffSession, StaffAccount)
                .join(StaffAccount, col(StaffAccount.id) == col(StaffSession.staff_id))
                .where(StaffSession.token_hash == token_hash(token))
            ).first()
            if row is None:
                return None
            session, account = row
            if session.expires_at <= now or not account.active or account.id is None:
                return None
            return StaffUser(
                id=account.id,
                email=account.email,
                role=StaffRole(account.role),
                doctor_id=account.doctor_id,
                language=account.language,
                csrf_token=session.csrf_token,
            )

    def logout(self, token: str) -> None:
        with transaction(self._engine) as db:
            db.execute(
                delete(StaffSession).where(col(StaffSession.token_hash) == token_hash(token))
            )

    def change_password(self, staff_id: int, current: str, new: str) -> NewSession:
        """Check the current password, store the new one, revoke every session of the account
        (other browsers included) and open a fresh one for this browser."""
        check_password_strength(new)
        now = self._clock.now()
        with transaction(self._engine) as db:
            account = db.get(StaffAccount, staff_id)
            if account is None or not self._verify(account.password_hash, current):
                raise AccountError("wrong_password")
            account.password_hash = self._hasher.hash(new)
            account.password_changed_at = now
            db.add(account)
            db.execute(delete(StaffSession).where(col(StaffSession.staff_id) == staff_id))
            return self._open_session(db, staff_id, now)

    def set_password(self, email: str, password: str) -> None:
        """The CLI's reset: a new password, every session revoked."""
        check_password_strength(password)
        with transaction(self._engine) as db:
            account = db.exec(
                select(StaffAccount).where(StaffAccount.email == normalize_email(email))
            ).first()
            if account is None or account.id is None:
                raise AccountError("unknown_account")
            account.password_hash = self._hasher.hash(password)
            account.password_changed_at = self._clock.now()
            db.add(account)
            db.execute(delete(StaffSession).where(col(StaffSession.staff_id) == account.id))

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
