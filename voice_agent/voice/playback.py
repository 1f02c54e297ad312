"""What the caller has really heard of each assistant audio item.

Audio forwarded to Twilio is buffered there and played at 8000 bytes/s (8 kHz μ-law, so one
byte is 0.125 ms). Sending is not hearing: only a ``mark`` echoed by Twilio proves that the
audio queued before it was played. On barge-in the bridge sends ``clear`` (Twilio drops its
buffer) and ``conversation.item.truncate`` with the milliseconds actually heard, so the model's
memory of what it said matches what the caller heard, and it never cuts past audio it sent.

:class:`PlaybackTracker` is pure bookkeeping (no I/O, no asyncio) driven by three calls:
``on_audio_sent`` after each media frame (returns the mark name to send right after it),
``on_mark`` for each echoed mark, and ``barge_in`` when the caller starts speaking.

Precision: by default only confirmed marks count, so ``played_ms`` lags reality by at most
one chunk between marks (conservative: we never claim the caller heard more than they did).
Passing ``clock`` (seconds, monotonic) adds an estimate of the audio played since the last
confirmation at Twilio's 8000 bytes/s, capped at the bytes sent for the item. The estimate
runs ahead of reality by about the one-way network latency, so it is opt-in.

:class:`PlaybackWaiter` is the thin asyncio layer on top, for ``await``-ing until an item
has drained (e.g. hang up only after the goodbye was heard).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BYTES_PER_MS", "PlaybackTracker", "PlaybackWaiter", "Truncation"]

BYTES_PER_MS = 8
"""8 kHz μ-law: 8 bytes of audio per millisecond."""

_BYTES_PER_SECOND = 8000


@dataclass(frozen=True, slots=True)
class Truncation:
    """Arguments for ``conversation.item.truncate`` after a barge-in."""

    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(slots=True)
class _Item:
    received: int = 0
    played: int = 0
    pending_marks: int = 0
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class _PendingMark:
    name: str
    item_id: str
    played_after: int  # item bytes played once this mark is echoed


class PlaybackTracker:
    """Bookkeeping of audio sent to Twilio versus audio the caller has heard."""

    __slots__ = ("_anchor", "_clock", "_ignored", "_items", "_pending", "_seq")

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._items: dict[str, _Item] = {}
        self._pending: deque[_PendingMark] = deque()
        self._ignored: set[str] = set()
        self._seq = 0
        self._anchor = 0.0  # clock time when the head of the queue started playing

    def on_audio_sent(self, item_id: str, nbytes: int) -> str:
        """Record ``nbytes`` of ``item_id`` forwarded to Twilio; return the mark to send next."""
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item()
        if not self._pending and self._clock is not None:
            self._anchor = self._clock()
        item.received += nbytes
        item.pending_marks += 1
        self._seq += 1
        name = str(self._seq)
        self._pending.append(_PendingMark(name, item_id, item.received))
        return name

    def on_mark(self, name: str) -> None:
        """Twilio echoed ``name``: everything queued before it was played (unless cleared)."""
        if name in self._ignored:
            self._ignored.discard(name)
            return
        if not any(mark.name == name for mark in self._pending):
            return
        while self._pending:
            mark = self._pending.popleft()
            item = self._items[mark.item_id]
            item.played = max(item.played, mark.played_after)
            item.pending_marks -= 1
            if mark.name == name:
                break
        if self._clock is not None:
            self._anchor = self._clock()

    @property
    def has_unplayed_audio(self) -> bool:
        """Whether audio is still queued at Twilio (some sent mark has not come back)."""
        return bool(self._pending)

    @property
    def is_speaking(self) -> bool:
        """Alias of :attr:`has_unplayed_audio`: the caller is hearing the assistant now."""
        return bool(self._pending)

    @property
    def current_item_id(self) -> str | None:
        """The item the caller is hearing right now, if any."""
        return self._pending[0].item_id if self._pending else None

    def played_bytes(self, item_id: str) -> int:
        """Bytes of ``item_id`` the caller has heard, never more than were sent."""
        item = self._items.get(item_id)
        if item is None:
            return 0
        played = item.played
        if self._clock is not None and self._pending and self._pending[0].item_id == item_id:
            elapsed = max(0.0, self._clock() - self._anchor)
            played += round(elapsed * _BYTES_PER_SECOND)
        return min(played, item.received)

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of ``item_id`` the caller has heard."""
        return self.played_bytes(item_id) // BYTES_PER_MS

    def received_ms(self, item_id: str) -> int:
        """Milliseconds of ``item_id`` forwarded to Twilio so far."""
        item = self._items.get(item_id)
        return item.received // BYTES_PER_MS if item else 0

    def barge_in(self) -> Truncation | None:
        """The caller started speaking: decide whether to ``clear`` and what to truncate.

        Returns ``None`` when nothing is queued at Twilio (no clear needed). Otherwise the
        caller is told to send ``clear`` now: the marks pending at this moment will be
        echoed by Twilio without having been played, so they are ignored from here on, and
        every item with queued audio is marked interrupted so its late deltas are dropped.
        """
        if not self._pending:
            return None
        current = self._pending[0].item_id
        heard = self.played_bytes(current)
        self._items[current].played = heard
        truncation = Truncation(current, 0, heard // BYTES_PER_MS)
        for mark in self._pending:
            item = self._items[mark.item_id]
            item.interrupted = True
            item.pending_marks = 0
            self._ignored.add(mark.name)
        self._pending.clear()
        return truncation

    def should_drop(self, item_id: str) -> bool:
        """Whether audio of ``item_id`` arriving now is a late delta of an interrupted item."""
        item = self._items.get(item_id)
        return item is not None and item.interrupted

    def is_drained(self, item_id: str) -> bool:
        """No audio of ``item_id`` is queued at Twilio anymore (played or cleared)."""
        item = self._items.get(item_id)
        return item is None or item.pending_marks == 0

    def all_played(self, item_id: str) -> bool:
        """Every byte sent for ``item_id`` was confirmed played (its last mark came back)."""
        item = self._items.get(item_id)
        return (
            item is not None
            and not item.interrupted
            and item.pending_marks == 0
            and item.played >= item.received
        )


class PlaybackWaiter:
    """asyncio helper: await until an item has drained from Twilio's buffer.

    Kept apart from :class:`PlaybackTracker` so the tracker stays pure. The bridge calls
    :meth:`on_mark` and :meth:`barge_in` here instead of on the tracker, which wakes waiters.
    """

    __slots__ = ("_tracker", "_waiters")

    def __init__(self, tracker: PlaybackTracker) -> None:
        self._tracker = tracker
        self._waiters: list[tuple[str, asyncio.Future[None]]] = []

    @property
    def tracker(self) -> PlaybackTracker:
        return self._tracker

    def on_mark(self, name: str) -> None:
        self._tracker.on_mark(name)
        self._wake()

    def barge_in(self) -> Truncation | None:
        truncation = self._tracker.barge_in()
        self._wake()
        return truncation

    async def wait_drained(self, item_id: str) -> bool:
        """Wait until no audio of ``item_id`` is queued; return whether it was all played.

        Bound the wait with ``asyncio.timeout`` at the call site.
        """
        if not self._tracker.is_drained(item_id):
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (item_id, future)
            self._waiters.append(entry)
            try:
                await future
            finally:
                if entry in self._waiters:
                    self._waiters.remove(entry)
        return self._tracker.all_played(item_id)

    def _wake(self) -> None:
        still_waiting = []
        for item_id, future in self._waiters:
            if self._tracker.is_drained(item_id):
                if not future.done():
                    future.set_result(None)
            else:
                still_waiting.append((item_id, future))
        self._waiters = still_waiting
