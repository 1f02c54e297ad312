"""No-show risk: the probability that a patient misses an appointment, from what the clinic
knew when it was booked (lead time, weekday, hour, channel, the patient's earlier no-shows,
attendances and confirmation replies).

Labels come from staff marking appointments attended or no-show (`voice-agent agenda mark`);
``completed`` counts as attended. The model (a logistic regression, whose probabilities are
close to calibrated as they come) is promoted only when, on the newest appointments it did
not see, it ranks no-shows above attendances better than chance (ROC AUC ≥ 0.55) and its
probabilities beat always saying the base rate (Brier score).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from voice_agent.clinic.model import Clinic
from voice_agent.learning.features import Features, appointment_features
from voice_agent.learning.models import ModelCache, ModelInfo, ModelStore
from voice_agent.store.db import transaction
from voice_agent.store.learning_tables import ModelKind
from voice_agent.store.tables import Appointment, AppointmentStatus, Interaction, InteractionKind

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

ATTENDED = (AppointmentStatus.attended, AppointmentStatus.completed)
HELD_OUT_SHARE = 0.25
MIN_AUC = 0.55


@dataclass(frozen=True)
class Example:
    start: datetime
    features: Features
    no_show: bool


@dataclass
class NoShowReport:
    trained: bool
    promoted: bool
    reason: str
    examples: int
    metrics: dict[str, Any]
    info: ModelInfo | None = None


class _History:
    """One patient's outcomes and confirmation replies in time order, to count what was known
    before a given moment."""

    def __init__(self) -> None:
        self.no_shows: list[datetime] = []
        self.attended: list[datetime] = []
        self.confirmed: list[datetime] = []
        self.replied: set[str] = set()
        """Appointments the patient confirmed."""

    def counts(self, before: datetime) -> tuple[int, int, int]:
        return (
            bisect.bisect_left(self.no_shows, before),
            bisect.bisect_left(self.attended, before),
            bisect.bisect_left(self.confirmed, before),
        )


def _histories(session: Session, patient_ids: Sequence[str] | None) -> dict[str, _History]:
    """Outcomes (at the appointment's end) and confirmation replies per patient."""
    histories: defaultdict[str, _History] = defaultdict(_History)
    outcomes = select(
        col(Appointment.patient_id), col(Appointment.end), col(Appointment.status)
    ).where(col(Appointment.status).in_((AppointmentStatus.no_show, *ATTENDED)))
    replies = select(
        col(Interaction.patient_id), col(Interaction.at), col(Interaction.appointment_id)
    ).where(
        col(Interaction.kind) == InteractionKind.confirmation,
        col(Interaction.patient_id).is_not(None),
    )
    if patient_ids is not None:
        outcomes = outcomes.where(col(Appointment.patient_id).in_(patient_ids))
        replies = replies.where(col(Interaction.patient_id).in_(patient_ids))
    for patient_id, end, status in session.execute(outcomes):
        history = histories[patient_id]
        (history.no_shows if status == AppointmentStatus.no_show else history.attended).append(end)
    for patient_id, at, appointment_id in session.execute(replies):
        histories[patient_id].confirmed.append(at)
        if appointment_id is not None:
            histories[patient_id].replied.add(appointment_id)
    for history in histories.values():
        history.no_shows.sort()
        history.attended.sort()
        history.confirmed.sort()
    return histories


def _features(appointment: Appointment, history: _History, clinic: Clinic) -> Features:
    no_shows, attended, confirmed = history.counts(appointment.created_at)
    return appointment_features(
        start=appointment.start,
        booked_at=appointment.created_at,
        channel=appointment.channel,
        clinic=clinic,
        past_no_shows=no_shows,
        past_attended=attended,
        past_confirmed=confirmed,
        confirmed=appointment.id in history.replied,
    )


def load_examples(engine: Engine, clinic: Clinic, *, until: datetime) -> list[Example]:
    """Every marked appointment that ended by ``until``, in time order, with its features."""
    with transaction(engine) as session:
        histories = _histories(session, None)
        rows = session.execute(
            select(Appointment)
            .where(
                col(Appointment.status).in_((AppointmentStatus.no_show, *ATTENDED)),
                col(Appointment.end) <= until,
            )
            .order_by(col(Appointment.start), col(Appointment.id))
        ).scalars()
        return [
            Example(
                a.start,
                _features(a, histories[a.patient_id], clinic),
                a.status == AppointmentStatus.no_show,
            )
            for a in rows
        ]


def new_no_show_pipeline() -> Pipeline:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("encode", DictVectorizer(sparse=False)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=0.1, max_iter=2000)),
        ]
    )


def probability(estimator: Any, features: Sequence[Features]) -> np.ndarray:
    return np.asarray(estimator.predict_proba(list(features))[:, 1], dtype=float)


def calibration(labels: Sequence[bool], predicted: Sequence[float]) -> dict[str, Any]:
    """ROC AUC, Brier score (and the base rate's), and reliability bins (quintiles)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y = np.asarray(labels, dtype=int)
    p = np.asarray(predicted, dtype=float)
    base = float(y.mean()) if len(y) else 0.0
    observed, mean_predicted = calibration_curve(y, p, n_bins=5, strategy="quantile")
    return {
        "roc_auc": round(float(roc_auc_score(y, p)), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "brier_base_rate": round(float(brier_score_loss(y, np.full(len(y), base))), 4),
        "no_show_rate": round(base, 4),
        "reliability": [
            {"predicted": round(float(m), 4), "observed": round(float(o), 4)}
            for m, o in zip(mean_predicted, observed, strict=True)
        ],
        "appointments": len(y),
    }


def train_no_show(
    engine: Engine,
    clinic: Clinic,
    now: datetime,
    *,
    min_examples: int,
    held_out_share: float = HELD_OUT_SHARE,
    store: ModelStore | None = None,
) -> NoShowReport:
    """Train on the older marked appointments, measure on the newest; promote if it beats the
    base rate there."""
    store = store or ModelStore(engine)
    examples = load_examples(engine, clinic, until=now)
    if len(examples) < min_examples:
        return NoShowReport(
            False, False, f"{len(examples)} marked appointments, {min_examples} needed",
            len(examples), {},
        )  # fmt: skip
    cut = len(examples) - max(1, round(len(examples) * held_out_share))
    train, held_out = examples[:cut], examples[cut:]
    if {e.no_show for e in train} != {True, False} or {e.no_show for e in held_out} != {
        True,
        False,
    }:
        return NoShowReport(
            False, False, "both no-shows and attendances are needed in each split",
            len(examples), {},
        )  # fmt: skip
    estimator = new_no_show_pipeline()
    estimator.fit([e.features for e in train], [int(e.no_show) for e in train])
    predicted = probability(estimator, [e.features for e in held_out])
    metrics = calibration([e.no_show for e in held_out], predicted.tolist())
    metrics["train_appointments"] = len(train)
    failed = []
    if metrics["roc_auc"] < MIN_AUC:
        failed.append(f"held-out ROC AUC {metrics['roc_auc']} below {MIN_AUC}")
    if metrics["brier"] >= metrics["brier_base_rate"]:
        failed.append(
            f"held-out Brier {metrics['brier']} not below the base rate's "
            f"{metrics['brier_base_rate']}"
        )
    promote = not failed
    reason = (
        "; ".join(failed)
        if failed
        else "ranks and calibrates better than the base rate on the held-out split"
    )
    info = store.save(
        ModelKind.no_show,
        estimator,
        promote=promote,
        trained_until=examples[-1].start,
        examples=len(examples),
        features=[str(n) for n in estimator.named_steps["encode"].get_feature_names_out()],
        metrics=metrics,
        now=now,
    )
    return NoShowReport(True, promote, reason, len(examples), metrics, info)


class NoShowRisk:
    """Each appointment's no-show probability with the promoted model (None without one)."""

    def __init__(self, engine: Engine, clinic: Callable[[], Clinic], cache: ModelCache) -> None:
        self._engine = engine
        self._clinic = clinic
        self._cache = cache

    @property
    def cache(self) -> ModelCache:
        return self._cache

    def in_session(
        self, session: Session, appointments: Sequence[Appointment], now: datetime | None = None
    ) -> dict[str, float | None]:
        """Risk of each appointment, read inside the caller's transaction."""
        model = self._cache.current(now)
        if model is None or not appointments:
            return {a.id: None for a in appointments}
        clinic = self._clinic()
        histories = _histories(session, sorted({a.patient_id for a in appointments}))
        features = [
            _features(a, histories.get(a.patient_id, _History()), clinic) for a in appointments
        ]
        chance = probability(model.estimator, features)
        return {a.id: round(float(p), 4) for a, p in zip(appointments, chance, strict=True)}

    def risk_of(self, session: Session, appointment: Appointment, now: datetime) -> float | None:
        """One appointment's risk inside the booking's transaction (the confirmation planner)."""
        return self.in_session(session, [appointment], now)[appointment.id]

    def no_show_risk(
        self, appointment_ids: Sequence[str], now: datetime | None = None
    ) -> dict[str, float | None]:
        """Risk per appointment id (None without a usable model; unknown ids are left out).

        For staff screens: `voice-agent agenda` prints it, the web console can call it."""
        if not appointment_ids:
            return {}
        with transaction(self._engine) as session:
            rows = list(
                session.execute(
                    select(Appointment).where(col(Appointment.id).in_(list(appointment_ids)))
                ).scalars()
            )
            return self.in_session(session, rows, now)
