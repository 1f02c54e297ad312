"""The learning pieces of one process, built once from the settings (see services.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from voice_agent.clinic.model import Clinic
from voice_agent.clock import Clock
from voice_agent.learning.decisions import DecisionRecorder
from voice_agent.learning.models import ModelCache, ModelStore
from voice_agent.learning.noshow import NoShowRisk
from voice_agent.learning.ranker import LearnedScorer
from voice_agent.settings import Settings
from voice_agent.store.learning_tables import ModelKind


@dataclass
class Learning:
    store: ModelStore
    scorer: LearnedScorer
    recorder: DecisionRecorder
    risk: NoShowRisk
    clock: Clock
    learned_ranking: bool = True
    """False (``VOICE_AGENT_RANKING_LEARNED=false``): the rules always rank; data is still kept."""

    def refresh(self) -> None:
        """Pick up newly promoted models (a job runs it every minute; training calls it)."""
        if self.learned_ranking:
            self.scorer.cache.refresh()
        self.risk.cache.refresh()

    def no_show_risk(
        self, appointment_ids: Sequence[str], now: datetime | None = None
    ) -> dict[str, float | None]:
        """No-show probability per appointment id (None without a usable model)."""
        return self.risk.no_show_risk(appointment_ids, now or self.clock.now())


def build_learning(
    settings: Settings, engine: Engine, clinic: Callable[[], Clinic], clock: Clock
) -> Learning:
    store = ModelStore(engine)
    age = settings.ranking_model_max_age_days
    ranking = ModelCache(store, ModelKind.ranking, max_age_days=age)
    no_show = ModelCache(store, ModelKind.no_show, max_age_days=age)
    scorer = LearnedScorer(ranking)
    learning = Learning(
        store=store,
        scorer=scorer,
        recorder=DecisionRecorder(scorer.label),
        risk=NoShowRisk(engine, clinic, no_show),
        clock=clock,
        learned_ranking=settings.ranking_learned,
    )
    learning.refresh()
    return learning
