"""What the caller has really heard of each assistant audio item.

Audio forwarded to Twilio is buffered there and played at 8000 bytes/s (8 kHz μ-law, so one
byte is 0.125 ms). Sending is not hearing: only a ``mark`` echoed by Twilio proves that the
audio queued before it was played. On barge-in the bridge sends ``clear`` (Twilio drops its
buffer) and ``conversation.item.truncate`` with the milliseconds actually heard, so the model's
memory of what it said matches what the caller heard, and it never cuts past audio it sent.

:class:`PlaybackTracker` is pure bookkeeping (no I/O, no asyncio) driven by three calls:
``on_audio_sent`` after each media frame (returns the mark name to send right after it, or
``None`` when no mark is due), ``on_mark`` for each echoed mark, ``flush_mark`` when an item's
audio is complete, and ``barge_in`` when the caller starts speaking.

Mark spacing: by default every media frame gets a mark. With ``mark_every=N`` (bytes) a mark
follows a frame only when N bytes of the item went out since its last mark, when the frame
starts a new item, or when nothing else is pending, and ``flush_mark`` marks the item's tail;
audio sent after the last mark still counts as unplayed, so a barge-in still clears it. The
bridge uses 100 ms: a Realtime API that streams 20 ms deltas then costs 10 marks (and 10
echoes) a second instead of 75, and a truncation is at most 100 ms more conservative.

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
    unmarked: int = 0  # bytes sent after the item's last mark
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class _PendingMark:
    name: str
    item_id: str
    played_after: int  # item bytes played once this mark is echoed


class PlaybackTracker:
    """Bookkeeping of audio sent to Twilio versus audio the caller has heard."""

    __slots__ = (
        "_anchor",
        "_clock",
        "_ignored",
        "_items",
        "_last_item",
        "_mark_every",
        "_pending",
        "_seq",
        "_unmarked",
    )

    def __init__(self, clock: Callable[[], float] | None = None, *, mark_every: int = 0) -> None:
        self._clock = clock
        self._mark_every = mark_every
        self._items: dict[str, _Item] = {}
        self._pending: deque[_PendingMark] = deque()
        self._ignored: set[str] = set()
        self._seq = 0
        self._anchor = 0.0  # clock time when the head of the queue started playing
        self._unmarked = 0  # bytes sent after the last mark, all items together
        self._last_item: str | None = None

    def on_audio_sent(self, item_id: str, nbytes: int) -> str | None:
        """Record ``nbytes`` of ``item_id`` forwarded to Twilio; return the mark to send next
        (``None``: no mark is due yet, see ``mark_every``)."""
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item()
        if not self._pending and not self._unmarked and self._clock is not None:
            self._anchor = self._clock()
        item.received += nbytes
        item.unmarked += nbytes
        self._unmarked += nbytes
        self._last_item = item_id
        pending = self._pending
        if pending and item.unmarked < self._mark_every and pending[-1].item_id == item_id:
            return None
        return self._issue(item_id, item)

    def flush_mark(self, item_id: str) -> str | None:
        """The item's audio is complete: the mark to send after its tail, if one is due."""
        item = self._items.get(item_id)
        if item is None or item.interrupted or not item.unmarked:
            return None
        return self._issue(item_id, item)

    def flush_marks(self) -> list[str]:
        """Marks for every item with audio sent after its last mark (normally none)."""
        if not self._unmarked:
            return []
        items = [i for i, item in self._items.items() if item.unmarked and not item.interrupted]
        return [self._issue(item_id, self._items[item_id]) for item_id in items]

    def _issue(self, item_id: str, item: _Item) -> str:
        item.pending_marks += 1
        self._unmarked -= item.unmarked
        item.unmarked = 0
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
        """Whether audio may still be queued at Twilio (a mark not back, or unmarked audio)."""
        return bool(self._pending) or self._unmarked > 0

    @property
    def is_speaking(self) -> bool:
        """Alias of :attr:`has_unplayed_audio`: the caller is hearing the assistant now."""
        return self.has_unplayed_audio

    @property
    def current_item_id(self) -> str | None:
        """The item the caller is hearing right now, if any."""
        if self._pending:
            return self._pending[0].item_id
        return self._last_item if self._unmarked else None

    def played_bytes(self, item_id: str) -> int:
        """Bytes of ``item_id`` the caller has heard, never more than were sent."""
        item = self._items.get(item_id)
        if item is None:
            return 0
        played = item.played
        if self._clock is not None and self.current_item_id == item_id:
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
        current = self.current_item_id
        if current is None:
            return None
        heard = self.played_bytes(current)
        self._items[current].played = heard
        truncation = Truncation(current, 0, heard // BYTES_PER_MS)
        for mark in self._pending:
            item = self._items[mark.item_id]
            item.interrupted = True
            item.pending_marks = 0
            self._ignored.add(mark.name)
        self._pending.clear()
        if self._unmarked:
            for item in self._items.values():
                if item.unmarked:
                    item.interrupted = True
                    item.unmarked = 0
            self._unmarked = 0
        return truncation

    def should_drop(self, item_id: str) -> bool:
        """Whether audio of ``item_id`` arriving now is a late delta of an interrupted item."""
        item = self._items.get(item_id)
        return item is not None and item.interrupted

    def is_drained(self, item_id: str) -> bool:
        """No audio of ``item_id`` is queued at Twilio anymore (played or cleared)."""
        item = self._items.get(item_id)
        return item is None or (item.pending_marks == 0 and item.unmarked == 0)

    def all_played(self, item_id: str) -> bool:
        """Every byte sent for ``item_id`` was confirmed played (its last mark came back)."""
        item = self._items.get(item_id)
        return (
            item is not None
            and not item.interrupted
            and item.pending_marks == 0
            and item.unmarked == 0
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
