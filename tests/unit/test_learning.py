"""The learning cores on small seeded data: offer and appointment features, the folded linear
model (equal to predict_proba), the held-out metrics and the promotion rule, the time split,
the scikit-learn version check, and the extra confirmation call for a high no-show risk."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

import voice_agent.clinic as clinic_package
from voice_agent.clinic import Clinic, load_clinic_file
from voice_agent.confirmations.planning import HIGH_RISK_SEQ, plan_steps
from voice_agent.learning.features import Features, appointment_features, offers_features
from voice_agent.learning.models import compatible
from voice_agent.learning.noshow import calibration
from voice_agent.learning.ranker import fold_linear, predict
from voice_agent.learning.training import (
    Decision,
    RankMetrics,
    ShownRow,
    beats,
    fit_ranking,
    model_scores,
    rank_metrics,
    rules_scores,
    split_by_time,
)
from voice_agent.scheduling.preferences import Preferences
from voice_agent.scheduling.ranking import (
    DEFAULT_SCORER,
    Candidate,
    Offer,
    RankingContext,
    rank_offers,
)

CLINIC = load_clinic_file(
    Path(clinic_package.__file__).parent / "samples" / "clinica_sao_lucas.yaml"
)
SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SP)  # a Monday


class Collect:
    """A scorer that keeps what it was asked to score (the rules score it)."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[Candidate], RankingContext]] = []

    def score(
        self, candidates: Sequence[Candidate], context: RankingContext, clinic: Clinic
    ) -> list[Offer]:
        self.batches.append((list(candidates), context))
        return DEFAULT_SCORER.score(candidates, context, clinic)


def _candidates(
    prefs: Preferences, context: RankingContext
) -> tuple[list[Candidate], list[Features]]:
    collect = Collect()
    rank_offers(CLINIC, "cardio-consulta", prefs, now=NOW, busy={}, context=context, scorer=collect)
    candidates, seen = collect.batches[0]
    scores = [o.score for o in DEFAULT_SCORER.score(candidates, seen, CLINIC)]
    return candidates, offers_features(candidates, seen, CLINIC, scores)


def test_offer_features_describe_slot_doctor_and_request_not_the_patient() -> None:
    soft = Preferences(periods=["afternoon"])
    context = RankingContext(
        previous_doctors={"cardiologia": "dr-ana-souza"},
        doctor_load={"dr-ana-souza": 4, "dr-carlos-lima": 0},
        language="en",
        soft=soft,
        now=NOW,
        asked=Preferences(),
    )
    candidates, features = _candidates(Preferences(), context)
    assert len(candidates) == len(features) > 5
    for candidate, f in zip(candidates, features, strict=True):
        local = candidate.start
        assert f["doctor"] == candidate.doctor.id
        assert f["previous_doctor"] == float(candidate.doctor.id == "dr-ana-souza")
        assert f["load_share"] == (1.0 if candidate.doctor.id == "dr-ana-souza" else 0.0)
        assert f["speaks_language"] == float("en" in candidate.doctor.languages)
        assert f["morning"] == float(local.hour < 12)
        assert f["in_period_asked"] == float(12 <= local.hour < 18)
        lead = (candidate.slot.start - NOW).total_seconds() / 86_400
        assert abs(float(f["lead_days"]) - lead) < 1e-3
        assert f["weekday"] == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
        assert f["levels_above_needed"] == candidate.doctor.qualification - 2
        assert set(f) <= {
            "lead_days", "log_lead_days", "days_after_first", "weekday", "hour", "morning",
            "afternoon", "evening", "in_period_asked", "period_asked", "doctor", "load_share",
            "seniority", "levels_above_needed", "previous_doctor", "insurance", "speaks_language",
            "rules_score",
        }  # fmt: skip


def test_appointment_features_count_the_history_and_smooth_the_rate() -> None:
    start = datetime(2026, 12, 7, 8, 30, tzinfo=SP)  # a Monday, early
    f = appointment_features(
        start=start,
        booked_at=start - timedelta(days=20),
        channel="whatsapp",
        clinic=CLINIC,
        past_no_shows=1,
        past_attended=0,
        past_confirmed=2,
        confirmed=False,
    )
    assert f["weekday"] == "mon" and f["early_morning"] == 1.0 and f["hour"] == 8.0
    assert f["lead_days"] == 20.0 and f["channel"] == "whatsapp"
    assert f["past_no_show_rate"] == round(1.5 / 5, 4)  # one of one is not a certainty
    assert f["new_patient"] == 0.0 and f["past_confirmed"] == 2.0 and f["confirmed"] == 0.0


def _synthetic(seed: int, sets: int) -> list[Decision]:
    """Offer sets whose patients like mornings, whatever the rules said first."""
    rng = random.Random(seed)
    decisions = []
    start = datetime(2026, 1, 5, tzinfo=UTC)
    for n in range(sets):
        offers = []
        for rank in (1, 2, 3):
            morning = rng.random() < 0.5
            lead = rng.uniform(1, 10)
            offers.append(
                ShownRow(
                    rank,
                    {
                        "morning": float(morning),
                        "lead_days": round(lead, 2),
                        "doctor": rng.choice(("dr-a", "dr-b")),
                        "rules_score": round(2 * 0.5 ** (lead / 3), 3),
                    },
                    round(2 * 0.5 ** (lead / 3), 3),
                    False,
                )
            )
        liked = max(
            range(3),
            key=lambda i: (
                2.0 * float(offers[i].features["morning"])
                - 0.1 * float(offers[i].features["lead_days"])
                + rng.gauss(0, 0.3)
            ),
        )
        offers[liked] = ShownRow(
            offers[liked].rank, offers[liked].features, offers[liked].rules_score, True
        )
        decisions.append(Decision(start + timedelta(hours=n), "chosen", offers))
    return decisions


def test_the_folded_linear_model_gives_the_probabilities_of_predict_proba() -> None:
    decisions = _synthetic(3, 60)
    estimator = fit_ranking(decisions)
    folded = fold_linear(estimator)
    assert folded is not None
    rows = [o.features for d in decisions for o in d.offers]
    rows.append({"morning": 1.0, "lead_days": 2.0, "doctor": "dr-unknown", "rules_score": 1.0})
    np.testing.assert_allclose(folded.probabilities(rows), predict(estimator, rows), rtol=1e-9)


def test_a_non_linear_pipeline_is_not_folded() -> None:
    tree = Pipeline([("encode", DictVectorizer()), ("model", DecisionTreeClassifier())])
    tree.fit([{"a": 1.0}, {"a": 0.0}], [1, 0])
    assert fold_linear(tree) is None


def test_the_model_learns_the_hidden_preference_and_beats_the_rules_held_out() -> None:
    train, held_out = split_by_time(_synthetic(11, 120))
    assert len(held_out) == 30 and train[-1].created_at < held_out[0].created_at
    estimator = fit_ranking(train)
    rules = rank_metrics(held_out, rules_scores)
    model = rank_metrics(held_out, model_scores(estimator))
    assert model.mrr > rules.mrr and model.first_offer_acceptance > rules.first_offer_acceptance
    assert beats(model, rules)


def test_rank_metrics_count_first_offer_acceptance_over_all_sets_and_mrr_over_choices() -> None:
    at = datetime(2026, 1, 5, tzinfo=UTC)

    def shown(scores: list[float], chosen: int | None) -> Decision:
        return Decision(
            at,
            "chosen" if chosen is not None else "rejected",
            [ShownRow(i + 1, {}, s, i == chosen) for i, s in enumerate(scores)],
        )

    decisions = [shown([3, 2, 1], 0), shown([3, 2, 1], 2), shown([1, 1, 1], 1), shown([3, 2], None)]
    metrics = rank_metrics(decisions, rules_scores)
    # Chosen ranked 1st, 3rd, 2nd (a tie keeps the order said); the fourth set had no choice.
    assert metrics == RankMetrics(4, 3, 0.25, round((1 + 1 / 3 + 1 / 2) / 3, 4))
    assert not beats(RankMetrics(4, 3, 0.2, 0.9), metrics)  # worse at the first offer
    assert not beats(metrics, metrics)  # a tie keeps the rules


def test_models_of_another_scikit_learn_major_minor_are_refused() -> None:
    assert compatible("1.9.0", installed="1.9.1")
    assert not compatible("1.8.2", installed="1.9.1")
    assert not compatible("2.0.0", installed="1.9.1")


def _clinic_with_threshold(threshold: float | None) -> Clinic:
    data = CLINIC.model_dump()
    data["confirmations"]["high_risk_threshold"] = threshold
    data["confirmations"]["high_risk_call_hours_before"] = 5
    return Clinic.model_validate(data)


def test_a_high_no_show_risk_adds_one_confirmation_call_before_the_appointment() -> None:
    clinic = _clinic_with_threshold(0.3)
    start = datetime(2026, 11, 27, 15, 0, tzinfo=SP)  # Friday afternoon
    usual = plan_steps(clinic, start, NOW.astimezone(UTC), no_show_risk=0.1)
    risky = plan_steps(clinic, start, NOW.astimezone(UTC), no_show_risk=0.45)
    assert [s.seq for s in usual] == [0, 1]
    extra = [s for s in risky if s.seq == HIGH_RISK_SEQ]
    assert len(risky) == 3 and len(extra) == 1 and extra[0].via == "call"
    assert extra[0].due_at == datetime(2026, 11, 27, 10, 0, tzinfo=SP)  # 5 hours before
    assert plan_steps(_clinic_with_threshold(None), start, NOW, no_show_risk=0.99) == usual
    assert plan_steps(clinic, start, NOW, no_show_risk=None) == usual  # no model: as before


def test_no_show_calibration_reports_auc_brier_and_reliability_bins() -> None:
    rng = random.Random(4)
    risk = [rng.uniform(0.02, 0.4) for _ in range(400)]
    missed = [rng.random() < p for p in risk]  # calibrated by construction
    figures = calibration(missed, risk)
    assert figures["appointments"] == 400 and len(figures["reliability"]) == 5
    assert 0.6 < figures["roc_auc"] < 0.9
    assert figures["brier"] < figures["brier_base_rate"]
    for b in figures["reliability"]:
        assert abs(b["predicted"] - b["observed"]) < 0.12
    shuffled = calibration(missed, rng.sample(risk, len(risk)))
    assert abs(shuffled["roc_auc"] - 0.5) < 0.1  # no signal, no ranking
