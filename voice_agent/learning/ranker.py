"""The learned scorer: the promoted model orders the offers, the rules stay the cold start and
the fallback, and the rules' reasons stay the words a patient hears.

Hard rules are not the scorer's business: `rank_offers` only hands it candidates that passed the
stated preferences, the coverage, the doctors' hours and the free-time check, so no score can
bring back a slot those filters removed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from voice_agent.clinic.model import Clinic
from voice_agent.learning.features import Features, offers_features
from voice_agent.learning.models import ModelCache
from voice_agent.scheduling.ranking import (
    DEFAULT_SCORER,
    Candidate,
    Offer,
    RankingContext,
    Scorer,
)

logger = logging.getLogger(__name__)


def predict(estimator: Any, features: Sequence[Features]) -> np.ndarray:
    """Probability of being chosen, one per feature dict (the pipeline encodes them itself)."""
    return np.asarray(estimator.predict_proba(list(features))[:, 1], dtype=float)


@dataclass(frozen=True)
class LinearModel:
    """A fitted encode → scale → logistic-regression pipeline folded into one weight per
    encoded feature, so one search's few hundred candidates are scored in plain Python: the
    same probabilities as ``predict_proba`` (a unit test holds them equal) without its
    per-call validation and array set-up, which cost milliseconds on the offer path."""

    weights: dict[str, float]
    """Encoded feature name (``lead_days``, ``doctor=dr-ana``) → weight on the raw value."""
    intercept: float
    separator: str = "="

    def probabilities(self, rows: Sequence[Features]) -> list[float]:
        weights, separator = self.weights, self.separator
        out = []
        for row in rows:
            z = self.intercept
            for key, value in row.items():
                if isinstance(value, str):
                    z += weights.get(f"{key}{separator}{value}", 0.0)
                else:
                    z += weights.get(key, 0.0) * value
            out.append(1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0)
        return out


def fold_linear(estimator: Any) -> LinearModel | None:
    """The pipeline as a `LinearModel`, or None when it is not DictVectorizer [→ StandardScaler]
    → binary LogisticRegression (such a model is scored through ``predict_proba``)."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline):
        return None
    steps = [step for _, step in estimator.steps]
    if len(steps) not in (2, 3) or not isinstance(steps[0], DictVectorizer):
        return None
    model = steps[-1]
    if not isinstance(model, LogisticRegression) or model.coef_.shape[0] != 1:
        return None
    coef = np.asarray(model.coef_[0], dtype=float)
    intercept = float(model.intercept_[0])
    if len(steps) == 3:
        scaler = steps[1]
        if not isinstance(scaler, StandardScaler):
            return None
        scale = np.asarray(scaler.scale_ if scaler.with_std else np.ones_like(coef), dtype=float)
        mean = np.asarray(scaler.mean_ if scaler.with_mean else np.zeros_like(coef), dtype=float)
        coef = coef / scale
        intercept -= float(np.dot(coef, mean))
    names = steps[0].get_feature_names_out()
    return LinearModel(
        {str(n): float(w) for n, w in zip(names, coef, strict=True)},
        intercept,
        steps[0].separator,
    )


class LearnedScorer:
    """A `Scorer` that uses the promoted ranking model when there is a usable one.

    Every offer carries its features (recorded with it as learning data) and the rules'
    reasons. With a model the score is the model's probability of being chosen; without one
    (missing, stale, incompatible, or failing) it is the rules' score.
    """

    def __init__(self, cache: ModelCache, rules: Scorer = DEFAULT_SCORER) -> None:
        self._cache = cache
        self._rules = rules
        self._folded: tuple[int, LinearModel | None] | None = None
        """(model id, its folded form) of the last model used."""

    @property
    def cache(self) -> ModelCache:
        return self._cache

    def label(self, now: datetime | None = None) -> str:
        """``model:v<version>`` when the model ranks now, else ``rules``."""
        model = self._cache.current(now)
        return f"model:v{model.info.version}" if model is not None else "rules"

    def score(
        self, candidates: Sequence[Candidate], context: RankingContext, clinic: Clinic
    ) -> list[Offer]:
        rules = self._rules.score(candidates, context, clinic)
        features = offers_features(candidates, context, clinic, [o.score for o in rules])
        model = self._cache.current(context.now)
        if model is not None:
            try:
                chance = self._probabilities(model.info.id, model.estimator, features)
            except Exception:  # a model that cannot score must not cost the patient the offers
                logger.exception("ranking model v%s failed; the rules rank", model.info.version)
            else:
                return [
                    Offer(o.slot, round(float(p), 6), o.reasons, f)
                    for o, p, f in zip(rules, chance, features, strict=True)
                ]
        return [Offer(o.slot, o.score, o.reasons, f) for o, f in zip(rules, features, strict=True)]

    def _probabilities(
        self, model_id: int, estimator: Any, features: Sequence[Features]
    ) -> Sequence[float]:
        folded = self._folded
        if folded is None or folded[0] != model_id:
            folded = self._folded = (model_id, fold_linear(estimator))
        if folded[1] is not None:
            return folded[1].probabilities(features)
        return list(predict(estimator, features))
