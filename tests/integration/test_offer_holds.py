"""BookingService.find_offers: the release, the read, the ranking and every hold in one
transaction, one savepoint per hold (SQLite and, when configured, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from tests.conftest import NOW
from voice_agent.scheduling.offers import cells
from voice_agent.scheduling.preferences import Preferences
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.tables import Hold, SlotClaim


def _claims(services: Services) -> list[SlotClaim]:
    with transaction(services.engine) as session:
        return list(session.execute(select(SlotClaim)).scalars())


async def test_a_collision_skips_that_hold_and_keeps_the_others(any_services: Services) -> None:
    """A slot claimed by another conversation after the busy read (simulated by a claim with no
    hold row, which the read cannot see) is skipped; the next ranked slot takes its place."""
    booking = any_services.booking
    expected = await booking.find_offers("cardio-consulta", Preferences(), holder="probe")
    await booking.release_holds("probe")
    taken = expected[1].slot
    with transaction(any_services.engine) as session:
        session.add_all(
            SlotClaim(
                doctor_id=taken.doctor_id,
                cell=cell,
                hold_id="someone-else",
                expires_at=NOW + timedelta(minutes=30),
            )
            for cell in cells(taken.start, taken.end)
        )
    offers = await booking.find_offers("cardio-consulta", Preferences(), holder="conv-a")
    assert [o.label for o in offers] == ["1", "2", "3"]
    assert offers[0].slot == expected[0].slot
    assert taken not in [o.slot for o in offers]
    with transaction(any_services.engine) as session:
        holds = list(session.execute(select(Hold).where(Hold.holder == "conv-a")).scalars())
    assert sorted(h.label for h in holds) == ["1", "2", "3"]
    assert {(h.doctor_id, h.start) for h in holds} == {
        (o.slot.doctor_id, o.slot.start) for o in offers
    }
    # The skipped hold left nothing behind: every claim belongs to a placed hold or the intruder.
    owners = Counter(c.hold_id for c in _claims(any_services))
    assert set(owners) == {h.id for h in holds} | {"someone-else"}


async def test_a_new_search_releases_old_holds_in_the_same_transaction(
    any_services: Services,
) -> None:
    booking = any_services.booking
    first = await booking.find_offers("cardio-consulta", Preferences(), holder="conv-a")
    second = await booking.find_offers(
        "derma-consulta", Preferences(periods=["morning"]), holder="conv-a"
    )
    with transaction(any_services.engine) as session:
        holds = list(session.execute(select(Hold)).scalars())
        claims = session.execute(select(func.count()).select_from(SlotClaim)).scalar_one()
    assert {h.id for h in holds} == {o.hold_id for o in second}
    assert not {h.id for h in holds} & {o.hold_id for o in first}
    assert claims == sum(len(list(cells(o.slot.start, o.slot.end))) for o in second)


async def test_an_empty_window_still_releases_old_holds(any_services: Services) -> None:
    booking = any_services.booking
    await booking.find_offers("cardio-consulta", Preferences(), holder="conv-a")
    yesterday = (NOW - timedelta(days=1)).date()
    assert (
        await booking.find_offers(
            "cardio-consulta", Preferences(date_to=yesterday), holder="conv-a"
        )
        == []
    )
    assert _claims(any_services) == []


async def test_concurrent_searches_never_hold_one_cell_twice(any_services: Services) -> None:
    booking = any_services.booking
    results = await asyncio.gather(
        *(
            booking.find_offers("cardio-consulta", Preferences(), holder=f"conv-{n}")
            for n in range(12)
        )
    )
    held = [(o.slot.doctor_id, o.slot.start) for offers in results for o in offers]
    assert all(len(offers) == 3 for offers in results)
    assert len(held) == len(set(held))
    cells_held = [(c.doctor_id, c.cell) for c in _claims(any_services)]
    assert len(cells_held) == len(set(cells_held))


async def test_local_calendar_blocks_are_read_in_the_same_transaction(
    any_services: Services,
) -> None:
    booking = any_services.booking
    first = await booking.find_offers("cardio-consulta", Preferences(), holder="probe")
    await booking.release_holds("probe")
    blocked = first[0].slot
    await any_services.calendar.block(blocked.doctor_id, blocked.start, blocked.end, "surgery")
    offers = await booking.find_offers("cardio-consulta", Preferences(), holder="conv-a")
    assert blocked not in [o.slot for o in offers]
    await booking.release_holds("conv-a")
    ranked = await booking.rank("cardio-consulta", Preferences(), now=NOW, limit=5)
    assert blocked not in [o.slot for o in ranked]
    busy, _ = await booking.busy_snapshot("cardio-consulta", Preferences(), NOW)
    assert any(i.start <= blocked.start < i.end for i in busy[blocked.doctor_id])
