"""Train and measure the offer ranker on the recorded decisions, split by time.

The model is pointwise: a logistic regression on "was this shown offer the one chosen", over
every offer of every decided set (docs/ranking.md says why). It is measured on the newest part of
the history it did not see, against the rules on the very same sets: first-offer acceptance (the
share of sets whose chosen offer the ranker puts first) and the mean reciprocal rank of the
chosen offer. It is promoted only when its MRR beats the rules' and its first-offer acceptance is
not worse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select
from sqlmodel import col

from voice_agent.learning.features import Features
from voice_agent.learning.models import ModelInfo, ModelStore
from voice_agent.learning.ranker import predict
from voice_agent.store.db import transaction
from voice_agent.store.learning_tables import ModelKind, OfferOutcome, OfferSet, OfferShown

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

DECIDED = (OfferOutcome.chosen, OfferOutcome.rejected, OfferOutcome.other_times)
"""Sets that say something about the offers. Abandoned ones (the call dropped, the patient
went quiet) are left out: nothing says the offers were the reason."""
HELD_OUT_SHARE = 0.25
"""The newest quarter of the decisions is the held-out split."""
MIN_HELD_OUT_CHOSEN = 10
"""Fewer chosen sets in the held-out split than this cannot show a model is better."""


@dataclass(frozen=True)
class ShownRow:
    rank: int
    features: Features
    rules_score: float
    chosen: bool


@dataclass(frozen=True)
class Decision:
    """One decided offer set: its offers in the order they were said."""

    created_at: datetime
    outcome: str
    offers: list[ShownRow]

    @property
    def chosen_index(self) -> int | None:
        return next((i for i, o in enumerate(self.offers) if o.chosen), None)


@dataclass(frozen=True)
class RankMetrics:
    sets: int
    chosen: int
    first_offer_acceptance: float
    """Share of the sets whose chosen offer this ranker puts first."""
    mrr: float
    """Mean reciprocal rank of the chosen offer, over the sets with a choice."""


@dataclass
class RankingReport:
    trained: bool
    promoted: bool
    reason: str
    decisions: int
    train_sets: int = 0
    held_out_sets: int = 0
    rules: RankMetrics | None = None
    model: RankMetrics | None = None
    info: ModelInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_decisions(engine: Engine, *, until: datetime | None = None) -> list[Decision]:
    """Every decided set (oldest first) with its offers."""
    query = (
        select(
            col(OfferSet.id),
            col(OfferSet.created_at),
            col(OfferSet.outcome),
            col(OfferShown.rank),
            col(OfferShown.features),
            col(OfferShown.rules_score),
            col(OfferShown.chosen),
        )
        .join(OfferShown, col(OfferShown.set_id) == col(OfferSet.id))
        .where(col(OfferSet.outcome).in_(DECIDED))
        .order_by(col(OfferSet.created_at), col(OfferSet.id), col(OfferShown.rank))
    )
    if until is not None:
        query = query.where(col(OfferSet.created_at) <= until)
    decisions: list[Decision] = []
    current: str | None = None
    with transaction(engine) as session:
        for set_id, created, outcome, rank, features, rules_score, chosen in session.execute(query):
            if set_id != current:
                current = set_id
                decisions.append(Decision(created, str(outcome), []))
            decisions[-1].offers.append(ShownRow(rank, json.loads(features), rules_score, chosen))
    return decisions


def count_decisions(engine: Engine, *, after: datetime | None = None) -> int:
    query = select(func.count()).select_from(OfferSet).where(col(OfferSet.outcome).in_(DECIDED))
    if after is not None:
        query = query.where(col(OfferSet.created_at) > after)
    with transaction(engine) as session:
        return int(session.execute(query).scalar() or 0)


def split_by_time(
    decisions: Sequence[Decision], held_out_share: float = HELD_OUT_SHARE
) -> tuple[list[Decision], list[Decision]]:
    """Oldest part to train, newest to measure (the list is in time order)."""
    cut = len(decisions) - max(1, round(len(decisions) * held_out_share))
    return list(decisions[:cut]), list(decisions[cut:])


def new_ranking_pipeline() -> Pipeline:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("encode", DictVectorizer(sparse=False)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=0.5, max_iter=2000)),
        ]
    )


def fit_ranking(decisions: Sequence[Decision]) -> Pipeline:
    rows = [o for d in decisions for o in d.offers]
    pipeline = new_ranking_pipeline()
    pipeline.fit([o.features for o in rows], [int(o.chosen) for o in rows])
    return pipeline


Scores = Callable[[Decision], Sequence[float]]


def rules_scores(decision: Decision) -> list[float]:
    return [o.rules_score for o in decision.offers]


def model_scores(estimator: Any) -> Scores:
    return lambda decision: list(predict(estimator, [o.features for o in decision.offers]))


def rank_metrics(decisions: Sequence[Decision], scores: Scores) -> RankMetrics:
    """How a ranker would have ordered each set, against what the patient chose.

    Ties keep the order the offers were said in."""
    first = 0
    reciprocal = 0.0
    chosen = 0
    for decision in decisions:
        index = decision.chosen_index
        if index is None:
            continue
        values = scores(decision)
        order = sorted(range(len(values)), key=lambda i: (-values[i], decision.offers[i].rank))
        position = order.index(index) + 1
        chosen += 1
        first += position == 1
        reciprocal += 1 / position
    sets = len(decisions)
    return RankMetrics(
        sets=sets,
        chosen=chosen,
        first_offer_acceptance=round(first / sets, 4) if sets else 0.0,
        mrr=round(reciprocal / chosen, 4) if chosen else 0.0,
    )


def beats(model: RankMetrics, rules: RankMetrics) -> bool:
    """The promotion rule: a better MRR, and no worse at the first offer."""
    return model.mrr > rules.mrr and model.first_offer_acceptance >= rules.first_offer_acceptance


def train_ranking(
    engine: Engine,
    now: datetime,
    *,
    min_decisions: int,
    held_out_share: float = HELD_OUT_SHARE,
    min_held_out_chosen: int = MIN_HELD_OUT_CHOSEN,
    store: ModelStore | None = None,
) -> RankingReport:
    """Train on the older decisions, measure on the newest, store the model; promote it if it
    beats the rules there (otherwise it is kept as rejected, with its figures)."""
    store = store or ModelStore(engine)
    decisions = load_decisions(engine, until=now)
    if len(decisions) < min_decisions:
        return RankingReport(
            False, False, f"{len(decisions)} decisions, {min_decisions} needed", len(decisions)
        )
    train, held_out = split_by_time(decisions, held_out_share)
    labels = {o.chosen for d in train for o in d.offers}
    if labels != {True, False}:
        return RankingReport(
            False, False, "the training split has no choice (or only choices)", len(decisions)
        )
    estimator = fit_ranking(train)
    rules = rank_metrics(held_out, rules_scores)
    model = rank_metrics(held_out, model_scores(estimator))
    if rules.chosen < min_held_out_chosen:
        promote, reason = False, f"only {rules.chosen} choices held out ({min_held_out_chosen})"
    elif beats(model, rules):
        promote, reason = True, "beats the rules on the held-out split"
    else:
        promote, reason = False, "does not beat the rules on the held-out split"
    metrics = {
        "rules": asdict(rules),
        "model": asdict(model),
        "train_sets": len(train),
        "held_out_sets": len(held_out),
        "held_out_from": held_out[0].created_at.isoformat(),
    }
    info = store.save(
        ModelKind.ranking,
        estimator,
        promote=promote,
        trained_until=decisions[-1].created_at,
        examples=len(decisions),
        features=[str(n) for n in estimator.named_steps["encode"].get_feature_names_out()],
        metrics=metrics,
        now=now,
    )
    return RankingReport(
        True, promote, reason, len(decisions), len(train), len(held_out), rules, model, info
    )


def evaluate_ranking(
    engine: Engine,
    store: ModelStore,
    now: datetime,
    *,
    held_out_share: float = HELD_OUT_SHARE,
) -> RankingReport:
    """The promoted model (or, if none, the newest) against the rules, on the newest decisions
    it was not trained on (or the usual held-out share when it saw them all)."""
    history = store.history(ModelKind.ranking, limit=20)
    chosen_info = next((m for m in history if m.status == "promoted"), None) or (
        history[0] if history else None
    )
    decisions = load_decisions(engine, until=now)
    if chosen_info is None:
        _, held_out = split_by_time(decisions, held_out_share) if decisions else ([], [])
        rules = rank_metrics(held_out, rules_scores)
        return RankingReport(False, False, "no model yet", len(decisions), rules=rules)
    loaded = store.load(chosen_info.id)
    unseen = [d for d in decisions if d.created_at > chosen_info.trained_until]
    if len(unseen) >= MIN_HELD_OUT_CHOSEN:
        held_out, where = unseen, "decisions after its training"
    else:
        held_out_from = chosen_info.metrics.get("held_out_from")
        held_out = [
            d
            for d in decisions
            if held_out_from is None or d.created_at >= datetime.fromisoformat(held_out_from)
        ]
        where = "its held-out split"
    rules = rank_metrics(held_out, rules_scores)
    model = rank_metrics(held_out, model_scores(loaded.estimator))
    return RankingReport(
        True,
        chosen_info.status == "promoted",
        f"measured on {where}",
        len(decisions),
        held_out_sets=len(held_out),
        rules=rules,
        model=model,
        info=chosen_info,
    )
