"""Rows that may land a moment late, written for every call at once: one transaction per interval.

A call's transcript turns, tool calls and errors, and the interaction rows that describe no change
(a question answered), do not need their own transaction each: a call produces a few every turn,
and at twenty calls a per-row or even per-call transaction was most of the app's CPU on the SIP
transport. The process keeps one :class:`WriteBehind`; every call queues into it and one task
writes the queue each ``interval`` (1 s) in a single transaction, plain rows as one ``executemany``
per table (no ORM objects), and hands the rest (an interaction row and its hooks) the same
session. A call's end awaits :meth:`WriteBehind.flush`, so its record is complete when it closes.

Nothing is dropped quietly: a batch that fails is retried row by row, each in its own transaction
(one bad row cannot take the others with it); a row that fails because the database cannot be
reached is kept for the next round (for ``MAX_OUTAGE_ROUNDS`` rounds, at most ``MAX_QUEUED``
rows), one that fails on its own is tried ``MAX_ATTEMPTS`` rounds. What is finally given up is
logged (its table, never its content).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlmodel import Session

from voice_agent.store.db import transaction

logger = logging.getLogger(__name__)

BATCH_SECONDS = 1.0
"""Rows are written at most this long after they are queued (and at once when flushed)."""
MAX_ATTEMPTS = 3
"""Rounds a row that fails on its own (a constraint, bad data) is tried before it is given up."""
MAX_OUTAGE_ROUNDS = 900
"""Rounds a row is kept while the database cannot be reached: 15 minutes at one a second."""
MAX_QUEUED = 50_000
"""Past this many unwritten items (the database down for long) new ones are refused, logged."""

Work = Callable[[Session], Any]


@dataclass
class _Item:
    table: Table | None
    row: dict[str, Any] | None
    work: Work | None
    attempts: int = 0

    @property
    def label(self) -> str:
        return self.table.name if self.table is not None else "work"


class WriteBehind:
    """One queue of late-landing rows for the whole process, written by one task."""

    def __init__(self, engine: Engine, interval: float = BATCH_SECONDS) -> None:
        self.engine = engine
        self.interval = interval
        self._queue: list[_Item] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # Queueing (from the event loop, never blocks) --------------------------------------------

    def insert(self, table: Table, row: dict[str, Any]) -> None:
        """Queue one plain row (every column value given; no ORM defaults run)."""
        self._put(_Item(table, row, None))

    def later(self, work: Work) -> None:
        """Queue work done inside the next batch's transaction (e.g. an interaction row)."""
        self._put(_Item(None, None, work))

    def _put(self, item: _Item) -> None:
        if len(self._queue) >= MAX_QUEUED:
            logger.error("write-behind queue full: one %s row refused", item.label)
            return
        self._queue.append(item)
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="write-behind")
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    # Writing ------------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything queued so far; returns once it is in the database (or given up)."""
        async with self._lock:  # a write already under way finishes first, then ours
            batch, self._queue = self._queue, []
            if batch:
                kept = await asyncio.to_thread(self._write, batch)
                if kept:  # the database was down: first in line next round
                    self._queue[:0] = kept
                    self._wake.set()

    async def close(self) -> None:
        """The process stops: stop the timer and write what is left."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
        if self._queue:
            logger.error("write-behind closing with %d rows unwritten", len(self._queue))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval)  # gather what the next second brings
            self._wake.clear()
            try:
                # Shielded: close() cancels the timer, never a write under way (its rows would
                # be neither written nor kept); close's own flush waits for it on the lock.
                await asyncio.shield(self.flush())
            except Exception:  # the task must outlive any one bad batch
                logger.exception("write-behind flush failed")

    def _write(self, batch: list[_Item]) -> list[_Item]:
        """Write a batch in one transaction; on failure, item by item. Returns what to retry."""
        try:
            with transaction(self.engine) as session:
                self._apply(session, batch)
            return []
        except Exception as exc:
            logger.warning(
                "write-behind batch of %d failed (%s): writing one by one",
                len(batch),
                type(exc).__name__,
            )
        failed: list[tuple[_Item, Exception]] = []
        for item in batch:
            try:
                with transaction(self.engine) as session:
                    self._apply(session, [item])
            except Exception as exc:
                failed.append((item, exc))
        if failed and len(failed) == len(batch):
            logger.warning("write-behind: nothing written; %d rows kept", len(failed))
        kept: list[_Item] = []
        for item, error in failed:
            item.attempts += 1
            limit = MAX_OUTAGE_ROUNDS if _unreachable(error) else MAX_ATTEMPTS
            if item.attempts < limit:
                kept.append(item)
            else:
                logger.error(
                    "write-behind gave up on one %s row after %d attempts: %s",
                    item.label,
                    item.attempts,
                    type(error).__name__,
                )
        return kept

    @staticmethod
    def _apply(session: Session, batch: list[_Item]) -> None:
        rows: dict[Table, list[dict[str, Any]]] = {}
        for item in batch:
            if item.table is not None and item.row is not None:
                rows.setdefault(item.table, []).append(item.row)
        for table, values in rows.items():
            session.execute(insert(table), values)  # one executemany per table, in queue order
        for item in batch:
            if item.work is not None:
                item.work(session)


def _unreachable(error: Exception) -> bool:
    """The database could not be reached or was busy (not the row's fault): keep trying."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError)


__all__ = ["BATCH_SECONDS", "WriteBehind"]
