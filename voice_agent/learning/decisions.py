"""Learning data recorded as it happens: each offer set a patient heard, and what they did.

Recording rides on transactions that run anyway, so the offer path gets no extra round trip:
the set and its offers are inserted in the search's own transaction, right after the holds; the
choice is settled by an interaction hook inside the booking's transaction; a new search by the
same conversation settles the previous set as ``other_times``; the end of the conversation (its
holds released) as ``rejected``; and a job marks sets whose holds expired with no decision as
``abandoned``. A settled set forgets its conversation id: what is kept is about slots and
doctors, never about who the patient was.
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
    db.execute(
        update(OfferSet)
        .where(col(OfferSet.holder) == holder, _OPEN)
        .values(outcome=outcome, settled_at=now, holder=None)
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
        """A new search by ``holder``: its open set (if any) asked for other times; the offers
        held now (if any) become a new open set. Returns the new set's id."""
        _settle_holder(db, holder, OfferOutcome.other_times, now)
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
            select(col(OfferShown.id), col(OfferShown.set_id), col(OfferShown.rank))
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
        shown_id, set_id, rank = found
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


def settle_abandoned(engine: Engine, now: datetime, grace: timedelta = timedelta(minutes=5)) -> int:
    """Open sets whose holds expired more than ``grace`` ago, with no decision: abandoned."""
    with transaction(engine) as session:
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
