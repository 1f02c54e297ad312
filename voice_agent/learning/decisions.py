"""Learning data recorded as it happens: each offer set a patient heard, and what they did.

Recording rides on transactions that run anyway, and the offer path only inserts: the set and
its offers go into the search's own transaction, right after the holds (two INSERTs). Everything
else is settled off that path: the choice by an interaction hook inside the booking's
transaction; the end of the conversation (its holds released) marks its newest open set
``rejected``; a set that a newer search of the same conversation replaced is ``other_times``
(settled with the conversation's next decision, or by the job); and the job marks sets whose
holds expired with no decision as ``abandoned``. A settled set forgets its conversation id: what
is kept is about slots and doctors, never about who the patient was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlmodel import Session, col

from voice_agent.scheduling.availability import Slot
from voice_agent.store.db import transaction
from voice_agent.store.learning_tables import OfferOutcome, OfferSet, OfferShown
from voice_agent.store.tables import Appointment, Interaction, InteractionKind, new_id

_SET = OfferSet.__table__  # type: ignore[attr-defined]
_SHOWN = OfferShown.__table__  # type: ignore[attr-defined]
_INSERT_SET = insert(_SET)
_INSERT_SHOWN = insert(_SHOWN)
_OPEN = col(OfferSet.outcome).is_(None)


class ShownOffer(Protocol):
    """What the offer path holds and says (``HeldOffer``): label "1" is said first."""

    @property
    def label(self) -> str: ...
    @property
    def slot(self) -> Slot: ...
    @property
    def score(self) -> float: ...
    @property
    def features(self) -> dict[str, float | str] | None: ...
    @property
    def expires_at(self) -> datetime: ...


def _settle_holder(
    db: Connection | Session, holder: str, outcome: OfferOutcome, now: datetime
) -> None:
    """The conversation's newest open set gets ``outcome``; older open ones were replaced by a
    new search: ``other_times``."""
    newest = db.execute(
        select(col(OfferSet.id))
        .where(col(OfferSet.holder) == holder, _OPEN)
        .order_by(col(OfferSet.created_at).desc(), col(OfferSet.id).desc())
        .limit(1)
    ).scalar()
    if newest is None:
        return
    if outcome != OfferOutcome.other_times:
        db.execute(
            update(OfferSet)
            .where(col(OfferSet.id) == newest)
            .values(outcome=outcome, settled_at=now, holder=None)
        )
    db.execute(
        update(OfferSet)
        .where(col(OfferSet.holder) == holder, _OPEN)
        .values(outcome=OfferOutcome.other_times, settled_at=now, holder=None)
    )


class DecisionRecorder:
    """Writes the learning data; every method runs inside a transaction it is handed."""

    def __init__(self, ranker_label: Callable[[datetime], str] | None = None) -> None:
        self._label = ranker_label or (lambda _now: "rules")

    def record_in(
        self,
        db: Connection,
        holder: str,
        service_id: str,
        offers: Sequence[ShownOffer],
        now: datetime,
    ) -> str | None:
        """The offers held now by a search of ``holder`` become a new open set (its id returned;
        None without offers). A set of the same conversation still open was replaced: it is
        settled as ``other_times`` later, off the offer path."""
        if not offers:
            return None
        set_id = new_id()
        db.execute(
            _INSERT_SET,
            {
                "id": set_id,
                "holder": holder,
                "service_id": service_id,
                "ranker": self._label(now),
                "created_at": now,
                "expires_at": max(o.expires_at for o in offers),
                "outcome": None,
                "settled_at": None,
                "chosen_rank": None,
            },
        )
        db.execute(
            _INSERT_SHOWN,
            [
                {
                    "set_id": set_id,
                    "rank": int(o.label) if o.label.isdigit() else index,
                    "doctor_id": o.slot.doctor_id,
                    "start": o.slot.start,
                    "rules_score": float((o.features or {}).get("rules_score", o.score)),
                    "features": json.dumps(o.features or {}, sort_keys=True),
                    "chosen": False,
                }
                for index, o in enumerate(offers, 1)
            ],
        )
        return set_id

    @staticmethod
    def release_in(db: Connection | Session, holder: str, now: datetime) -> None:
        """The conversation ended (its holds released) with its set undecided: rejected."""
        _settle_holder(db, holder, OfferOutcome.rejected, now)

    def on_interaction(self, session: Session, interaction: Interaction) -> None:
        """Interaction hook: a booking (or a move) of a slot shown in an open set settles that
        set as ``chosen``, in the booking's own transaction."""
        if interaction.kind not in (InteractionKind.booking, InteractionKind.reschedule):
            return
        if interaction.appointment_id is None:
            return
        appointment = session.get(Appointment, interaction.appointment_id)
        if appointment is None:
            return
        found = session.execute(
            select(
                col(OfferShown.id),
                col(OfferShown.set_id),
                col(OfferShown.rank),
                col(OfferSet.holder),
                col(OfferSet.created_at),
            )
            .join(OfferSet, col(OfferSet.id) == col(OfferShown.set_id))
            .where(
                col(OfferShown.doctor_id) == appointment.doctor_id,
                col(OfferShown.start) == appointment.start,
                _OPEN,
            )
            .order_by(col(OfferSet.created_at).desc())
            .limit(1)
        ).first()
        if found is None:
            return
        shown_id, set_id, rank, holder, created = found
        session.execute(
            update(OfferShown).where(col(OfferShown.id) == shown_id).values(chosen=True)
        )
        session.execute(
            update(OfferSet)
            .where(col(OfferSet.id) == set_id)
            .values(
                outcome=OfferOutcome.chosen,
                chosen_rank=rank,
                settled_at=interaction.at,
                holder=None,
            )
        )
        if holder is not None:  # the searches it replaced: the patient asked for other times
            session.execute(
                update(OfferSet)
                .where(col(OfferSet.holder) == holder, _OPEN, col(OfferSet.created_at) <= created)
                .values(outcome=OfferOutcome.other_times, settled_at=interaction.at, holder=None)
            )


def settle_abandoned(engine: Engine, now: datetime, grace: timedelta = timedelta(minutes=5)) -> int:
    """Open sets a newer search of the same conversation replaced: ``other_times``; then open
    sets whose holds expired more than ``grace`` ago, with no decision: ``abandoned`` (counted)."""
    newer = _SET.alias("newer")
    replaced = (
        select(newer.c.id)
        .where(newer.c.holder == _SET.c.holder, newer.c.created_at > _SET.c.created_at)
        .exists()
    )
    with transaction(engine) as session:
        session.execute(
            update(OfferSet)
            .where(_OPEN, col(OfferSet.holder).is_not(None), replaced)
            .values(outcome=OfferOutcome.other_times, settled_at=now, holder=None)
        )
        result = session.execute(
            update(OfferSet)
            .where(_OPEN, col(OfferSet.expires_at) <= now - grace)
            .values(outcome=OfferOutcome.abandoned, settled_at=now, holder=None)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def decision_counts(engine: Engine) -> dict[str, int]:
    """Offer sets per outcome (``open`` for undecided ones)."""
    with transaction(engine) as session:
        rows = session.execute(
            select(col(OfferSet.outcome), func.count()).group_by(col(OfferSet.outcome))
        ).all()
    return {str(outcome) if outcome is not None else "open": int(n) for outcome, n in rows}
