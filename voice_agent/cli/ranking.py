"""`voice-agent ranking train | evaluate | status`: the learned offer ranking and no-show risk
(docs/ranking.md tells how to read the figures)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from voice_agent.cli.context import runtime
from voice_agent.cli.context import services as build_services

ranking_app = typer.Typer(
    help="Learned offer ranking and no-show risk: train, evaluate, status.", no_args_is_help=True
)


def _pct(value: float) -> str:
    return f"{value * 100:5.1f}%"


def _side_by_side(rules: Any, model: Any) -> None:
    typer.echo(f"  {'held out':10} {'first-offer acceptance':>24} {'MRR':>7} {'sets':>6}")
    for name, m in (("rules", rules), ("model", model)):
        if m is not None:
            typer.echo(f"  {name:10} {_pct(m.first_offer_acceptance):>24} {m.mrr:7.3f} {m.sets:6}")


def _no_show_lines(metrics: dict[str, Any]) -> None:
    if not metrics:
        return
    typer.echo(
        f"  held out: {metrics['appointments']} appointments, no-show rate "
        f"{_pct(metrics['no_show_rate']).strip()}, ROC AUC {metrics['roc_auc']:.3f}, Brier "
        f"{metrics['brier']:.4f} (base rate {metrics['brier_base_rate']:.4f})"
    )
    bins = "  ".join(
        f"{b['predicted'] * 100:.0f}%→{b['observed'] * 100:.0f}%" for b in metrics["reliability"]
    )
    typer.echo(f"  reliability (predicted→observed): {bins}")


@ranking_app.command("train")
def train(
    ctx: typer.Context,
    min_decisions: Annotated[
        int | None,
        typer.Option(help="Decisions (and marked appointments) needed; default from settings."),
    ] = None,
) -> None:
    """Train both models now on the recorded history; each is promoted only if it beats the
    rules (ranking) or the base rate (no-show) on the newest, held-out part."""
    from voice_agent.learning.noshow import train_no_show
    from voice_agent.learning.training import train_ranking

    services = build_services(ctx)
    now = runtime(ctx).clock.now()
    minimum = min_decisions or services.settings.ranking_min_decisions
    report = train_ranking(services.engine, now, min_decisions=minimum)
    if report.info is None:
        typer.echo(f"ranking: not trained ({report.reason})")
    else:
        verdict = "promoted" if report.promoted else "not promoted"
        typer.echo(f"ranking model v{report.info.version}: {verdict} ({report.reason})")
        typer.echo(
            f"  decisions {report.decisions} (train {report.train_sets}, "
            f"held out {report.held_out_sets})"
        )
        _side_by_side(report.rules, report.model)
    no_show = train_no_show(services.engine, services.clinic(), now, min_examples=minimum)
    if no_show.info is None:
        typer.echo(f"no-show: not trained ({no_show.reason})")
    else:
        verdict = "promoted" if no_show.promoted else "not promoted"
        typer.echo(f"no-show model v{no_show.info.version}: {verdict} ({no_show.reason})")
        _no_show_lines(no_show.metrics)
    services.close()


@ranking_app.command("evaluate")
def evaluate(ctx: typer.Context) -> None:
    """The model in use (else the newest) against the rules on decisions it did not train on:
    first-offer acceptance and MRR side by side."""
    from voice_agent.learning.models import ModelStore
    from voice_agent.learning.training import evaluate_ranking
    from voice_agent.store.learning_tables import ModelKind

    services = build_services(ctx)
    store = ModelStore(services.engine)
    report = evaluate_ranking(services.engine, store, runtime(ctx).clock.now())
    if report.info is None:
        typer.echo(f"ranking: no model yet; the rules rank ({report.decisions} decisions)")
    else:
        state = "in use" if report.promoted else "not in use"
        typer.echo(f"ranking model v{report.info.version} ({state}), {report.reason}:")
    _side_by_side(report.rules, report.model)
    no_show = store.history(ModelKind.no_show, limit=1)
    if no_show:
        typer.echo(f"no-show model v{no_show[0].version} ({no_show[0].status}):")
        _no_show_lines(no_show[0].metrics)
    services.close()


@ranking_app.command("status")
def status(ctx: typer.Context) -> None:
    """Which ranker is in use and why, the models' versions and figures, the decisions kept."""
    from voice_agent.learning.decisions import decision_counts
    from voice_agent.learning.training import count_decisions
    from voice_agent.store.learning_tables import ModelKind

    services = build_services(ctx)
    learning = services.learning
    assert learning is not None
    now = runtime(ctx).clock.now()
    counts = decision_counts(services.engine)
    total = sum(counts.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    typer.echo(f"offer sets recorded: {total}" + (f" ({parts})" if parts else ""))
    for kind, cache in (
        (ModelKind.ranking, learning.scorer.cache),
        (ModelKind.no_show, learning.risk.cache),
    ):
        history = learning.store.history(kind, limit=5)
        why = (
            cache.why_not(now)
            if kind == ModelKind.no_show or learning.learned_ranking
            else "switched off"
        )
        used = "rules" if kind == ModelKind.ranking else "none"
        in_use = (
            f"model v{cache.state.model.info.version}"
            if why is None and cache.state.model
            else used
        )
        typer.echo(f"{kind.value}: {in_use}" + (f" ({why})" if why else ""))
        for info in history:
            typer.echo(
                f"  v{info.version:<3} {info.status:9} trained {info.created_at:%Y-%m-%d %H:%M} "
                f"on {info.examples} up to {info.trained_until:%Y-%m-%d} "
                f"(scikit-learn {info.sklearn_version})"
            )
        if kind == ModelKind.ranking:
            since = count_decisions(
                services.engine, after=history[0].trained_until if history else None
            )
            typer.echo(f"  new decisions since the last model: {since}")
    services.close()
