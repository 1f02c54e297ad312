"""PlaybackTracker: marks prove playback, clear voids pending marks, truncation stays honest."""

from __future__ import annotations

import asyncio

import pytest

from voice_agent.voice.playback import PlaybackTracker, PlaybackWaiter, Truncation


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_sent_audio_is_not_played_until_its_mark_returns() -> None:
    tracker = PlaybackTracker()
    first = tracker.on_audio_sent("item_a", 800)
    second = tracker.on_audio_sent("item_a", 800)
    assert first != second
    assert tracker.is_speaking and tracker.has_unplayed_audio
    assert tracker.played_ms("item_a") == 0
    assert tracker.received_ms("item_a") == 200

    tracker.on_mark(first)
    assert tracker.played_ms("item_a") == 100
    assert tracker.is_speaking
    tracker.on_mark(second)
    assert tracker.played_ms("item_a") == 200
    assert not tracker.is_speaking
    assert tracker.all_played("item_a")


def test_mark_names_are_unique_and_short() -> None:
    tracker = PlaybackTracker()
    names = [tracker.on_audio_sent(f"item_{i % 3}", 160) for i in range(1000)]
    assert len(set(names)) == len(names)
    assert max(len(name) for name in names) <= 8


def test_a_later_mark_confirms_the_earlier_ones() -> None:
    tracker = PlaybackTracker()
    tracker.on_audio_sent("a", 160)
    tracker.on_audio_sent("a", 160)
    last = tracker.on_audio_sent("a", 160)
    tracker.on_mark(last)
    assert tracker.played_ms("a") == 60
    assert not tracker.has_unplayed_audio


def test_unknown_and_repeated_marks_are_ignored() -> None:
    tracker = PlaybackTracker()
    name = tracker.on_audio_sent("a", 160)
    tracker.on_mark("not-ours")
    assert tracker.played_ms("a") == 0
    tracker.on_mark(name)
    tracker.on_mark(name)
    assert tracker.played_ms("a") == 20


def test_barge_in_truncates_at_what_was_heard() -> None:
    tracker = PlaybackTracker()
    first = tracker.on_audio_sent("a", 1600)
    tracker.on_audio_sent("a", 1600)
    tracker.on_mark(first)

    truncation = tracker.barge_in()

    assert truncation == Truncation(item_id="a", content_index=0, audio_end_ms=200)
    assert not tracker.is_speaking
    assert tracker.should_drop("a")
    assert not tracker.should_drop("b")
    assert not tracker.all_played("a")
    assert tracker.is_drained("a")


def test_marks_echoed_after_clear_do_not_count_as_played() -> None:
    tracker = PlaybackTracker()
    first = tracker.on_audio_sent("a", 800)
    second = tracker.on_audio_sent("a", 800)
    assert tracker.barge_in() == Truncation("a", 0, 0)

    # Twilio echoes the pending marks right after the clear: the audio was NOT played.
    tracker.on_mark(first)
    tracker.on_mark(second)
    assert tracker.played_ms("a") == 0

    # Audio of the next response is tracked normally; its marks come after the stale ones.
    new_mark = tracker.on_audio_sent("b", 800)
    assert tracker.is_speaking
    tracker.on_mark(new_mark)
    assert tracker.played_ms("b") == 100
    assert tracker.all_played("b")


def test_stale_echo_interleaved_with_new_audio() -> None:
    tracker = PlaybackTracker()
    stale = tracker.on_audio_sent("a", 800)
    tracker.barge_in()
    fresh = tracker.on_audio_sent("b", 800)
    tracker.on_mark(stale)  # echoed late, after new audio was queued
    assert tracker.played_ms("b") == 0
    assert tracker.is_speaking
    tracker.on_mark(fresh)
    assert tracker.played_ms("b") == 100


def test_barge_in_with_nothing_playing_needs_no_clear() -> None:
    tracker = PlaybackTracker()
    assert tracker.barge_in() is None
    mark = tracker.on_audio_sent("a", 160)
    tracker.on_mark(mark)
    assert tracker.barge_in() is None
    assert not tracker.should_drop("a")


def test_barge_in_targets_the_item_being_heard_and_drops_all_queued_items() -> None:
    tracker = PlaybackTracker()
    heard = tracker.on_audio_sent("a", 800)
    tracker.on_audio_sent("a", 800)
    tracker.on_audio_sent("b", 800)
    tracker.on_mark(heard)
    assert tracker.current_item_id == "a"
    assert tracker.barge_in() == Truncation("a", 0, 100)
    assert tracker.should_drop("a")
    assert tracker.should_drop("b")


def test_played_never_exceeds_received_even_with_clock_estimate() -> None:
    clock = FakeClock()
    tracker = PlaybackTracker(clock=clock)
    tracker.on_audio_sent("a", 800)  # 100 ms
    clock.now += 0.05
    assert tracker.played_ms("a") == 50
    clock.now += 10.0
    assert tracker.played_ms("a") == 100
    truncation = tracker.barge_in()
    assert truncation == Truncation("a", 0, 100)


def test_clock_estimate_restarts_from_each_confirmed_mark() -> None:
    clock = FakeClock()
    tracker = PlaybackTracker(clock=clock)
    first = tracker.on_audio_sent("a", 1600)
    tracker.on_audio_sent("a", 1600)
    clock.now += 0.25  # mark echo is late: estimate keeps counting at 8000 bytes/s
    assert tracker.played_ms("a") == 250
    tracker.on_mark(first)
    assert tracker.played_ms("a") == 200
    clock.now += 0.03
    assert tracker.barge_in() == Truncation("a", 0, 230)
    assert tracker.played_ms("a") == 230


def test_clock_estimate_starts_when_audio_is_sent_after_silence() -> None:
    clock = FakeClock()
    tracker = PlaybackTracker(clock=clock)
    mark = tracker.on_audio_sent("a", 160)
    tracker.on_mark(mark)
    clock.now += 5.0  # a long pause with nothing queued
    tracker.on_audio_sent("b", 1600)
    clock.now += 0.1
    assert tracker.played_ms("b") == 100


def test_without_clock_only_marks_count() -> None:
    tracker = PlaybackTracker()
    tracker.on_audio_sent("a", 8000)
    assert tracker.played_ms("a") == 0
    assert tracker.barge_in() == Truncation("a", 0, 0)


def test_unknown_item_queries_are_safe() -> None:
    tracker = PlaybackTracker()
    assert tracker.played_ms("nope") == 0
    assert tracker.received_ms("nope") == 0
    assert tracker.is_drained("nope")
    assert not tracker.all_played("nope")
    assert not tracker.should_drop("nope")
    assert tracker.current_item_id is None


async def test_waiter_resolves_after_the_final_mark() -> None:
    waiter = PlaybackWaiter(PlaybackTracker())
    marks = [waiter.tracker.on_audio_sent("goodbye", 800) for _ in range(3)]
    task = asyncio.create_task(waiter.wait_drained("goodbye"))
    await asyncio.sleep(0)
    waiter.on_mark(marks[0])
    waiter.on_mark(marks[1])
    await asyncio.sleep(0)
    assert not task.done()
    waiter.on_mark(marks[2])
    assert await asyncio.wait_for(task, 1) is True


async def test_waiter_resolves_false_when_the_item_is_cleared() -> None:
    waiter = PlaybackWaiter(PlaybackTracker())
    waiter.tracker.on_audio_sent("goodbye", 800)
    task = asyncio.create_task(waiter.wait_drained("goodbye"))
    await asyncio.sleep(0)
    assert waiter.barge_in() is not None
    assert await asyncio.wait_for(task, 1) is False


async def test_waiter_returns_at_once_when_already_drained() -> None:
    waiter = PlaybackWaiter(PlaybackTracker())
    mark = waiter.tracker.on_audio_sent("a", 160)
    waiter.on_mark(mark)
    assert await waiter.wait_drained("a") is True


async def test_waiter_times_out_with_asyncio_timeout() -> None:
    waiter = PlaybackWaiter(PlaybackTracker())
    waiter.tracker.on_audio_sent("a", 160)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await waiter.wait_drained("a")
    assert waiter._waiters == []


def test_spaced_marks_follow_every_n_bytes_and_each_new_item() -> None:
    tracker = PlaybackTracker(mark_every=800)
    marks = [tracker.on_audio_sent("a", 160) for _ in range(10)]
    # The first frame is marked (nothing pending), then one mark per 800 bytes.
    assert [m is not None for m in marks] == [True] + [False] * 4 + [True] + [False] * 4
    assert tracker.has_unplayed_audio and tracker.current_item_id == "a"
    assert tracker.on_audio_sent("b", 160) is not None  # a new item is marked at once
    assert not tracker.is_drained("a")
    tail = tracker.flush_mark("a")
    assert tail is not None and tracker.flush_mark("a") is None
    tracker.on_mark(tail)
    assert tracker.all_played("a") and tracker.played_ms("a") == 200


def test_unmarked_audio_still_counts_as_unplayed_and_is_cleared_on_barge_in() -> None:
    tracker = PlaybackTracker(mark_every=800)
    first = tracker.on_audio_sent("a", 160)
    assert first is not None
    assert tracker.on_audio_sent("a", 160) is None
    tracker.on_mark(first)  # the marked part played; 20 ms were sent after it
    assert tracker.has_unplayed_audio and tracker.current_item_id == "a"
    assert not tracker.is_drained("a")
    truncation = tracker.barge_in()
    assert truncation == Truncation("a", 0, 20)
    assert not tracker.has_unplayed_audio
    assert tracker.should_drop("a") and tracker.flush_mark("a") is None
    assert tracker.is_drained("a") and not tracker.all_played("a")


def test_flush_marks_covers_every_item_with_a_tail() -> None:
    tracker = PlaybackTracker(mark_every=800)
    assert tracker.flush_marks() == []
    tracker.on_audio_sent("a", 160)
    tracker.on_audio_sent("a", 160)
    tracker.on_audio_sent("b", 160)
    tracker.on_audio_sent("b", 160)
    names = tracker.flush_marks()
    assert len(names) == 2 and tracker.flush_marks() == []
    tracker.on_mark(names[-1])
    assert tracker.all_played("a") and tracker.all_played("b")
