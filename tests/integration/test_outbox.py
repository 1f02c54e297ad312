"""The outbox core on SQLite and PostgreSQL: backoff, dead letters, retry, group order, leases."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from voice_agent.clock import FixedClock
from voice_agent.errors import PermanentFailure
from voice_agent.integrations.outbox import Delivered, Outbox, OutboxItem
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.outbox_tables import OutboxRow, OutboxStatus


class Recorder:
    """A handler that fails the first ``failures`` attempts of each row."""

    kind = "test"
    batch_size = 1

    def __init__(self, failures: int = 0, permanent: set[str] | None = None) -> None:
        self.failures = failures
        self.permanent = permanent or set()
        self.sent: list[str] = []
        self.attempts: dict[str, int] = {}

    async def deliver(self, items: list[OutboxItem]) -> list[Delivered | BaseException]:
        outcomes: list[Delivered | BaseException] = []
        for item in items:
            self.attempts[item.key] = self.attempts.get(item.key, 0) + 1
            if item.key in self.permanent:
                outcomes.append(PermanentFailure("bad request"))
            elif self.attempts[item.key] <= self.failures:
                outcomes.append(ConnectionError("down"))
            else:
                self.sent.append(item.key)
                outcomes.append(Delivered(external_id=f"x-{item.key}"))
        return outcomes


def make_outbox(services: Services, clock: FixedClock, **kwargs: object) -> Outbox:
    return Outbox(services.engine, clock, **kwargs)  # type: ignore[arg-type]


def statuses(services: Services) -> dict[str, str]:
    with transaction(services.engine) as session:
        rows = session.exec(select(OutboxRow).where(OutboxRow.kind == "test")).all()
        return {row.key: row.status.value for row in rows}


async def test_backoff_then_delivery(any_services: Services, clock: FixedClock) -> None:
    outbox = make_outbox(any_services, clock, max_attempts=5)
    handler = Recorder(failures=2)
    outbox.register(handler)
    for i in range(3):
        assert outbox.enqueue("test", f"k{i}", {"n": i})
    assert not outbox.enqueue("test", "k0", {"n": 0})  # same key: nothing doubled
    report = await outbox.drain()
    assert (report.claimed, report.retried, report.delivered) == (3, 3, 0)
    assert (await outbox.drain()).claimed == 0  # not due before the backoff
    clock.advance(timedelta(seconds=7))
    assert (await outbox.drain()).retried == 3
    clock.advance(timedelta(seconds=13))
    assert (await outbox.drain()).delivered == 3
    assert sorted(handler.sent) == ["k0", "k1", "k2"]
    assert set(statuses(any_services).values()) == {"done"}
    assert outbox.counts()["done"] == 3


async def test_dead_letters_alert_and_can_be_retried(
    any_services: Services, clock: FixedClock
) -> None:
    outbox = make_outbox(any_services, clock, max_attempts=2)
    handler = Recorder(failures=10, permanent={"bad"})
    outbox.register(handler)
    dead: list[str] = []
    outbox.on_dead_letter(lambda session, row: dead.append(row.key))
    outbox.enqueue("test", "flaky", {})
    outbox.enqueue("test", "bad", {})
    await outbox.drain()
    assert dead == ["bad"]  # a permanent failure is dead at once
    clock.advance(timedelta(minutes=1))
    await outbox.drain()
    assert sorted(dead) == ["bad", "flaky"]
    assert outbox.counts()["dead"] == 2
    assert [row.key for row in outbox.rows("dead")] == ["bad", "flaky"]
    handler.failures, handler.permanent = 0, set()
    handler.attempts.clear()
    assert outbox.retry(all_dead=True) == 2
    await outbox.drain()
    assert statuses(any_services) == {"flaky": "done", "bad": "done"}


async def test_rows_of_one_group_are_delivered_in_order(
    any_services: Services, clock: FixedClock
) -> None:
    outbox = make_outbox(any_services, clock)
    handler = Recorder(failures=1)
    outbox.register(handler)
    for step in ("create", "move", "delete"):
        outbox.enqueue("test", f"appt-1:{step}", {}, group_key="appt-1")
    outbox.enqueue("test", "other", {}, group_key="appt-2")
    report = await outbox.drain()
    assert report.claimed == 2  # only the head of each group
    for _ in range(4):
        clock.advance(timedelta(minutes=5))
        await outbox.drain()
    in_group = [key for key in handler.sent if key.startswith("appt-1")]
    assert in_group == ["appt-1:create", "appt-1:move", "appt-1:delete"]


async def test_a_crashed_claim_is_reclaimed_after_its_lease(
    any_services: Services, clock: FixedClock
) -> None:
    outbox = make_outbox(any_services, clock, lease_seconds=60)
    handler = Recorder()
    outbox.register(handler)
    outbox.enqueue("test", "k", {})
    _token, items = outbox.claim()  # a process claims, then dies without marking
    assert [item.attempts for item in items] == [1]
    assert (await outbox.drain()).claimed == 0  # leased
    clock.advance(timedelta(seconds=61))
    report = await outbox.drain()
    assert report.delivered == 1
    with transaction(any_services.engine) as session:
        row = session.exec(select(OutboxRow)).one()
        assert (row.status, row.attempts) == (OutboxStatus.done, 2)
        assert row.external_id == "x-k"
