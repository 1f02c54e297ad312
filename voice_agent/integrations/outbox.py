"""The outbox: side effects written with the change that causes them, delivered until they land.

Nothing lost: a row is inserted in the caller's transaction (``enqueue_in``), so it exists exactly
when the change committed. Nothing doubled: each row is claimed by one process at a time
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite) for a lease, and every
handler delivers idempotently (Google event ids, Sheets reference column, Twilio message lookup,
clinic API idempotency keys), so a process killed between sending and marking sends nothing
twice when the row is claimed again after its lease.

Rows of one ``group_key`` (an appointment) are delivered in order: a row waits while an older row
of its group is still pending. After ``max_attempts`` a row becomes a dead letter, and the
dead-letter hooks run in the same transaction (the alerter enqueues an alert there).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, and_, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from voice_agent.clock import Clock
from voice_agent.errors import PermanentFailure
from voice_agent.store.db import is_sqlite, transaction
from voice_agent.store.outbox_tables import OutboxRow, OutboxStatus

logger = logging.getLogger(__name__)

_EARLIER = aliased(OutboxRow)
"""An earlier row of the same group, for the claim's ordering check; built once, since building
an alias copies every column (1.3 of the 2 ms an idle claim cost, every 5 seconds)."""


@dataclass(frozen=True)
class OutboxItem:
    """A claimed row, as a handler sees it."""

    id: int
    kind: str
    key: str
    group_key: str | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime

    @property
    def retried(self) -> bool:
        """True when an earlier attempt may have reached the service (check before re-sending)."""
        return self.attempts > 1


@dataclass(frozen=True)
class Delivered:
    external_id: str | None = None


Outcome = Delivered | BaseException


class Handler(Protocol):
    kind: str
    batch_size: int

    async def deliver(self, items: list[OutboxItem]) -> list[Outcome]:
        """One outcome per item, in order. Raising fails the whole batch (retried)."""
        ...


async def deliver_each(
    items: list[OutboxItem], deliver_one: Callable[[OutboxItem], Awaitable[Delivered]]
) -> list[Outcome]:
    """A handler's ``deliver`` for items sent one by one: an item's error is its own outcome
    (retried or dead on its own), never the batch's."""
    outcomes: list[Outcome] = []
    for item in items:
        try:
            outcomes.append(await deliver_one(item))
        except Exception as error:
            outcomes.append(error)
    return outcomes


DeadLetterHook = Callable[[Session, OutboxRow], None]


@dataclass
class DeliveryReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: DeliveryReport) -> None:
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        for kind, count in other.by_kind.items():
            self.by_kind[kind] += count


class Outbox:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        max_attempts: int = 8,
        base_delay_seconds: float = 5.0,
        max_delay_seconds: float = 3600.0,
        lease_seconds: float = 120.0,
        concurrency: int = 8,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.max_attempts = max_attempts
        self._base = base_delay_seconds
        self._max = max_delay_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._concurrency = concurrency
        self._handlers: dict[str, Handler] = {}
        self._dead_hooks: list[DeadLetterHook] = []
        self.after_send: Callable[[list[OutboxItem]], None] | None = None
        """Test hook: runs after a handler returned and before the outcome is recorded."""

    # Configuration ----------------------------------------------------------------------------

    def register(self, handler: Handler) -> None:
        self._handlers[handler.kind] = handler

    def handler(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def on_dead_letter(self, hook: DeadLetterHook) -> None:
        self._dead_hooks.append(hook)

    # Writing ----------------------------------------------------------------------------------

    def enqueue_in(
        self,
        session: Session,
        kind: str,
        key: str,
        payload: dict[str, Any],
        *,
        group_key: str | None = None,
    ) -> OutboxRow:
        """Add a row inside the caller's transaction (keys must be new: derive them from ids)."""
        now = self._clock.now()
        row = OutboxRow(
            kind=kind,
            key=key,
            group_key=group_key,
            payload=json.dumps(payload, ensure_ascii=False, default=str, sort_keys=True),
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        return row

    def enqueue(
        self, kind: str, key: str, payload: dict[str, Any], *, group_key: str | None = None
    ) -> bool:
        """Add a row in its own transaction; False when a row with this key already exists."""
        try:
            with transaction(self._engine) as session:
                if session.execute(
                    select(col(OutboxRow.id)).where(col(OutboxRow.key) == key)
                ).first():
                    return False
                self.enqueue_in(session, kind, key, payload, group_key=group_key)
                return True
        except IntegrityError:
            return False

    # Delivering -------------------------------------------------------------------------------

    def claim(self, limit: int = 100) -> tuple[str, list[OutboxItem]]:
        """Claim due rows for one lease; returns the claim token and the items."""
        token = uuid.uuid4().hex
        now = self._clock.now()
        kinds = list(self._handlers)
        if not kinds:
            return token, []
        earlier = _EARLIER
        query = (
            select(OutboxRow)
            .where(
                col(OutboxRow.status) == OutboxStatus.pending,
                col(OutboxRow.next_attempt_at) <= now,
                col(OutboxRow.kind).in_(kinds),
                ~exists().where(
                    and_(
                        col(OutboxRow.group_key).is_not(None),
                        col(earlier.group_key) == col(OutboxRow.group_key),
                        col(earlier.id) < col(OutboxRow.id),
                        col(earlier.status) == OutboxStatus.pending,
                    )
                ),
            )
            .order_by(col(OutboxRow.id))
            .limit(limit)
        )
        if not is_sqlite(self._engine):
            query = query.with_for_update(skip_locked=True, of=OutboxRow)
        items: list[OutboxItem] = []
        with transaction(self._engine) as session:
            for row in session.execute(query).scalars():
                row.attempts += 1
                row.claim_token = token
                row.next_attempt_at = now + self._lease
                row.updated_at = now
                session.add(row)
                items.append(
                    OutboxItem(
                        id=row.id or 0,
                        kind=row.kind,
                        key=row.key,
                        group_key=row.group_key,
                        payload=json.loads(row.payload),
                        attempts=row.attempts,
                        created_at=row.created_at,
                    )
                )
        return token, items

    async def deliver_due(self, limit: int = 100) -> DeliveryReport:
        """Claim what is due and deliver it (the scheduler's job, every few seconds)."""
        token, items = await asyncio.to_thread(self.claim, limit)
        report = DeliveryReport(claimed=len(items))
        if not items:
            return report
        by_kind: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_kind[item.kind].append(item)
        batches: list[tuple[Handler, list[OutboxItem]]] = []
        for kind, group in by_kind.items():
            handler = self._handlers[kind]
            size = max(1, handler.batch_size)
            batches += [(handler, group[i : i + size]) for i in range(0, len(group), size)]
        gate = asyncio.Semaphore(self._concurrency)

        async def run(handler: Handler, batch: list[OutboxItem]) -> list[Outcome]:
            async with gate:
                try:
                    outcomes = await handler.deliver(batch)
                    if len(outcomes) != len(batch):
                        raise RuntimeError("handler returned a wrong number of outcomes")
                    return outcomes
                except Exception as exc:
                    return [exc] * len(batch)

        results = await asyncio.gather(*(run(h, b) for h, b in batches))
        pairs = [
            (item, outcome)
            for (_, batch), outcomes in zip(batches, results, strict=True)
            for item, outcome in zip(batch, outcomes, strict=True)
        ]
        if self.after_send is not None:
            self.after_send([item for item, _ in pairs])
        await asyncio.to_thread(self._record, token, pairs, report)
        return report

    async def drain(self, *, max_rounds: int = 100, limit: int = 100) -> DeliveryReport:
        """Deliver until nothing is due (tests, `voice-agent outbox deliver`)."""
        total = DeliveryReport()
        for _ in range(max_rounds):
            report = await self.deliver_due(limit)
            total.add(report)
            if report.claimed == 0:
                break
        return total

    def _record(
        self, token: str, pairs: Sequence[tuple[OutboxItem, Outcome]], report: DeliveryReport
    ) -> None:
        now = self._clock.now()
        with transaction(self._engine) as session:
            for item, outcome in pairs:
                row = session.get(OutboxRow, item.id, with_for_update=True)
                if row is None or row.claim_token != token:
                    logger.warning("outbox row %s was re-claimed while in flight", item.id)
                    continue
                row.claim_token = None
                row.updated_at = now
                if isinstance(outcome, Delivered):
                    row.status = OutboxStatus.done
                    row.delivered_at = now
                    row.external_id = outcome.external_id
                    row.last_error = None
                    report.delivered += 1
                    report.by_kind[row.kind] += 1
                else:
                    row.last_error = _describe_error(outcome)
                    permanent = isinstance(outcome, PermanentFailure)
                    if permanent or row.attempts >= self.max_attempts:
                        row.status = OutboxStatus.dead
                        report.dead += 1
                        logger.error(
                            "outbox row %s (%s) is a dead letter after %s attempts: %s",
                            row.id,
                            row.kind,
                            row.attempts,
                            type(outcome).__name__,
                        )
                        session.add(row)
                        session.flush()
                        for hook in self._dead_hooks:
                            hook(session, row)
                        continue
                    row.next_attempt_at = now + self.backoff(row.attempts)
                    report.retried += 1
                    logger.warning(
                        "outbox row %s (%s) attempt %s failed: %s",
                        row.id,
                        row.kind,
                        row.attempts,
                        type(outcome).__name__,
                    )
                session.add(row)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with ±20 % jitter: 5 s, 10 s, 20 s … capped at ``max_delay``."""
        delay = min(self._base * 2 ** max(0, attempts - 1), self._max)
        return timedelta(seconds=delay * random.uniform(0.8, 1.2))

    def fail_after_delivery(
        self,
        external_id: str,
        error: str,
        retry: Callable[[OutboxRow, dict[str, Any]], dict[str, Any] | None],
    ) -> OutboxRow | None:
        """The service reported later that a delivered effect failed (Twilio's status callback):
        the row is never counted as delivered. ``retry`` returns the payload changes for another
        attempt (e.g. ``force_template``), or None: the row is a dead letter (hooks run)."""
        now = self._clock.now()
        with transaction(self._engine) as session:
            row = (
                session.execute(
                    select(OutboxRow)
                    .where(col(OutboxRow.external_id) == external_id)
                    .with_for_update()
                    .limit(1)
                )
                .scalars()
                .first()
            )
            if row is None or row.status == OutboxStatus.dead:
                return row
            payload = json.loads(row.payload)
            changes = retry(row, payload)
            row.last_error = error[:500]
            row.delivered_at = None
            row.claim_token = None
            row.updated_at = now
            if changes is not None:
                row.payload = json.dumps(
                    payload | changes, ensure_ascii=False, default=str, sort_keys=True
                )
                row.status = OutboxStatus.pending
                row.external_id = None
                row.next_attempt_at = now
                session.add(row)
                logger.warning(
                    "outbox row %s (%s) failed after delivery; retried", row.id, row.kind
                )
                return row
            row.status = OutboxStatus.dead
            session.add(row)
            session.flush()
            logger.error("outbox row %s (%s) failed after delivery: dead letter", row.id, row.kind)
            for hook in self._dead_hooks:
                hook(session, row)
            return row

    # Inspecting -------------------------------------------------------------------------------

    def rows(
        self, status: str | None = None, limit: int = 50, *, kind: str | None = None
    ) -> list[OutboxRow]:
        """Rows for `voice-agent outbox`: pending, failed (pending with an error), dead, done."""
        query = select(OutboxRow).order_by(col(OutboxRow.id).desc()).limit(limit)
        if kind is not None:
            query = query.where(col(OutboxRow.kind) == kind)
        if status == "failed":
            query = query.where(
                col(OutboxRow.status) == OutboxStatus.pending,
                col(OutboxRow.last_error).is_not(None),
            )
        elif status is not None:
            query = query.where(col(OutboxRow.status) == OutboxStatus(status))
        with transaction(self._engine) as session:
            return list(session.execute(query).scalars())

    def counts(self) -> dict[str, int]:
        with transaction(self._engine) as session:
            rows = session.execute(
                select(col(OutboxRow.status), func.count()).group_by(col(OutboxRow.status))
            ).all()
            failed = session.execute(
                select(func.count()).where(
                    col(OutboxRow.status) == OutboxStatus.pending,
                    col(OutboxRow.last_error).is_not(None),
                )
            ).scalar_one()
        counts = {status.value: 0 for status in OutboxStatus}
        counts.update({str(status): int(n) for status, n in rows})
        counts["failed"] = int(failed)
        return counts

    def retry(self, row_id: int | None = None, *, all_dead: bool = False) -> int:
        """Put dead letters back in the queue with a fresh attempt budget."""
        now = self._clock.now()
        condition = [col(OutboxRow.status) == OutboxStatus.dead]
        if not all_dead:
            condition.append(col(OutboxRow.id) == row_id)
        with transaction(self._engine) as session:
            result = session.execute(
                update(OutboxRow)
                .where(*condition)
                .values(
                    status=OutboxStatus.pending,
                    attempts=0,
                    next_attempt_at=now,
                    claim_token=None,
                    updated_at=now,
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _describe_error(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text[:500]


__all__ = [
    "Delivered",
    "DeliveryReport",
    "Handler",
    "Outbox",
    "OutboxItem",
    "PermanentFailure",
]
