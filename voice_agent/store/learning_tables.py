"""What the learned ranking and the no-show model learn from, and the models themselves.

An ``offer_set`` is one search whose offers a patient heard; ``offer_shown`` holds each offer with
the features it had at that moment (no patient identity: the features are about the slot, the
doctor and the request). The set's ``holder`` (the conversation) is kept only while the set is
open, to settle it when the patient books, searches again or leaves; it is cleared when settled.
``learned_model`` keeps every trained model with its metrics, its features and the scikit-learn
version that wrote it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from voice_agent.store.types import UTCDateTime, utcnow


def _utc(**kwargs: object) -> Column:
    return Column(UTCDateTime(), **kwargs)  # type: ignore[arg-type]


class OfferOutcome(StrEnum):
    chosen = "chosen"
    """The patient booked one of the offers."""
    rejected = "rejected"
    """The conversation ended (holds released) without a choice."""
    other_times = "other_times"
    """The patient asked for other times: a new search replaced the set."""
    abandoned = "abandoned"
    """No decision before the holds expired (a settlement job marks it)."""


class OfferSet(SQLModel, table=True):
    """One search whose offers a patient heard, and what came of it."""

    __tablename__ = "offer_set"
    __table_args__ = (Index("ix_offer_set_outcome_expires", "outcome", "expires_at"),)

    id: str = Field(primary_key=True, max_length=32)
    holder: str | None = Field(
        default=None, max_length=128, index=True, description="The conversation, while open."
    )
    service_id: str = Field(max_length=64)
    ranker: str = Field(default="rules", max_length=32, description="rules | model:<version>")
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False, index=True))
    expires_at: datetime = Field(sa_column=_utc(nullable=False))
    outcome: OfferOutcome | None = Field(default=None, max_length=16)
    settled_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    chosen_rank: int | None = None


class OfferShown(SQLModel, table=True):
    """One offer of a set, with its features at the time and whether it was the one chosen."""

    __tablename__ = "offer_shown"
    __table_args__ = (Index("ix_offer_shown_doctor_start", "doctor_id", "start"),)

    id: int | None = Field(default=None, primary_key=True)
    set_id: str = Field(foreign_key="offer_set.id", max_length=32, index=True)
    rank: int = Field(description="1 = said first.")
    doctor_id: str = Field(max_length=64)
    start: datetime = Field(sa_column=_utc(nullable=False))
    rules_score: float = 0.0
    features: str = Field(sa_column=Column(Text, nullable=False), description="JSON object.")
    chosen: bool = False


class ModelKind(StrEnum):
    ranking = "ranking"
    no_show = "no_show"


class ModelStatus(StrEnum):
    promoted = "promoted"
    """In use (at most one per kind)."""
    rejected = "rejected"
    """Trained, but did not beat the rules (or too little data) on the held-out split."""
    retired = "retired"
    """Was in use; a newer model replaced it."""


class LearnedModel(SQLModel, table=True):
    """A trained model, serialized with joblib, and what it was measured at."""

    __tablename__ = "learned_model"
    __table_args__ = (Index("ix_learned_model_kind_status", "kind", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: ModelKind = Field(max_length=16)
    version: int
    status: ModelStatus = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc(nullable=False))
    trained_until: datetime = Field(
        sa_column=_utc(nullable=False), description="Newest example used (train + held-out)."
    )
    examples: int = Field(description="Decisions (ranking) or appointments (no-show) used.")
    sklearn_version: str = Field(max_length=32)
    features: str = Field(sa_column=Column(Text, nullable=False), description="JSON list.")
    metrics: str = Field(sa_column=Column(Text, nullable=False), description="JSON object.")
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
