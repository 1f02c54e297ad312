"""The learned scorer: the promoted model orders the offers, the rules stay the cold start and
the fallback, and the rules' reasons stay the words a patient hears.

Hard rules are not the scorer's business: `rank_offers` only hands it candidates that passed the
stated preferences, the coverage, the doctors' hours and the free-time check, so no score can
bring back a slot those filters removed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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


class LearnedScorer:
    """A `Scorer` that uses the promoted ranking model when there is a usable one.

    Every offer carries its features (recorded with it as learning data) and the rules'
    reasons. With a model the score is the model's probability of being chosen; without one
    (missing, stale, incompatible, or failing) it is the rules' score.
    """

    def __init__(self, cache: ModelCache, rules: Scorer = DEFAULT_SCORER) -> None:
        self._cache = cache
        self._rules = rules

    @property
    def cache(self) -> ModelCache:
        return self._cache

    def label(self, now: Any = None) -> str:
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
                chance = predict(model.estimator, features)
            except Exception:  # a model that cannot score must not cost the patient the offers
                logger.exception("ranking model v%s failed; the rules rank", model.info.version)
            else:
                return [
                    Offer(o.slot, round(float(p), 6), o.reasons, f)
                    for o, p, f in zip(rules, chance, features, strict=True)
                ]
        return [Offer(o.slot, o.score, o.reasons, f) for o, f in zip(rules, features, strict=True)]
