"""One monitoring pass as the CLI and the scheduled monitor run it, retrain hook included.

A pass settles retrains whose job has ended (freeing the model's slot),
builds the reference (the data file the champion was trained on, unless one
is given), checks the new windows of the prediction log and, when the policy
asks for it, queues the champion's spec on fresh data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from loopml.core.errors import LoopmlError
from loopml.core.settings import Settings
from loopml.core.spec import PipelineSpec
from loopml.monitoring.alerts import Alerter
from loopml.monitoring.champion import champion_main_metric, champion_predictions
from loopml.monitoring.monitor import MonitorRun, Retrain, WindowOutcome, WindowSpec, monitor_model
from loopml.monitoring.policy import MonitorPolicy, decay_metric
from loopml.monitoring.reference import Reference, read_table
from loopml.monitoring.retrain import (
    Submit,
    champion_spec,
    queue_retrain,
    settle_retrains,
    training_data,
)
from loopml.registry.models import CHAMPION, version_for_alias
from loopml.store.jobs import JobStore
from loopml.store.monitoring import MonitorStore
from loopml.store.predictions import PredictionLog


@dataclass(frozen=True)
class PassOptions:
    """What one pass checks and against what."""

    window: WindowSpec
    policy: MonitorPolicy
    reference: Path | None = None
    target: str | None = None
    webhook: str | None = None
    since: datetime | None = None
    resume: bool = True
    champion: bool = True
    retrain: bool = True
    materialize: str | None = None
    """A Feast repo to materialize (incrementally) before the pass (monitoring/features.py)."""


@dataclass
class MonitorPass:
    """What a pass found and did."""

    run: MonitorRun
    reference_source: Path
    retrains_settled: int
    prediction_drift_reference: bool
    features: dict[str, Any] | None = None
    """The feature store's freshness when the champion uses one (or --materialize named one)."""


@dataclass
class ReferenceCache:
    """The last pass's reference, reused while the champion and its data file stay the same.

    Building a reference reads the training data and scores it with the
    champion; a scheduled monitor would otherwise redo both on every pass.
    """

    key: tuple[object, ...] | None = None
    reference: Reference | None = None
    scored: bool = False


def queue_submit(settings: Settings) -> Submit:
    """Submit through the training queue (RabbitMQ or the embedded broker)."""
    from loopml.queue.app import make_app
    from loopml.queue.submit import submit_training

    app = make_app(settings)

    def submit(spec: PipelineSpec) -> str:
        return submit_training(app, settings, spec).id

    return submit


def monitor_pass(
    settings: Settings,
    name: str,
    options: PassOptions,
    *,
    submit: Submit | None = None,
    on_window: Callable[[WindowOutcome], None] | None = None,
    cache: ReferenceCache | None = None,
) -> MonitorPass:
    """Check ``name``'s new prediction-log windows; retrain through ``submit`` when asked.

    ``submit`` defaults to the training queue; a retrain also needs the
    policy's ``fresh_data``, else the window is alerted on and the reason says so.
    """
    from loopml.monitoring.features import check_features

    alerter = Alerter(options.webhook or settings.alert_webhook_url)
    features = check_features(
        settings, name, options.materialize, alerter, materialize=options.materialize is not None
    )
    log = PredictionLog.open(settings.database)
    store = MonitorStore(log.engine)
    jobs = JobStore(log.engine)
    settled = settle_retrains(store, jobs, name)
    source, target = _reference_source(settings, name, options)
    cache = cache or ReferenceCache()
    key = (
        str(source),
        source.stat().st_mtime_ns if source.exists() else None,
        target,
        options.champion and version_for_alias(settings, name, CHAMPION),
    )
    if cache.key != key or cache.reference is None:
        frame = read_table(source)
        scored = None
        if options.champion:
            scored = champion_predictions(settings, name, frame, target=target)
        cache.reference = Reference.from_frame(
            frame, target=target, prediction=scored[1] if scored else None
        )
        cache.key, cache.scored = key, scored is not None
    reference = cache.reference
    policy = judged_by_main_metric(settings, name, options.policy)
    retrain: Retrain | None = None
    if options.retrain and policy.fresh_data is not None:
        retrain = queue_retrain(settings, {name: policy}, submit or queue_submit(settings))
    run = monitor_model(
        name,
        log_store=log,
        store=store,
        reference=reference,
        policy=policy,
        window=options.window,
        alerter=alerter,
        retrain=retrain,
        since=options.since,
        resume=options.resume,
        on_window=on_window,
    )
    return MonitorPass(run, source, settled, cache.scored, features)


def judged_by_main_metric(settings: Settings, name: str, policy: MonitorPolicy) -> MonitorPolicy:
    """``policy`` watching the champion's own ``main_metric`` unless it names a metric.

    Accuracy says little on imbalanced data: with 98 % negatives a model
    whose F1 fell from 0.96 to 0.31 lost under 5 % accuracy. The metric the
    spec chose the champion by is the one its decay is judged by.
    """
    if policy.metric is not None:
        return policy
    try:
        main = champion_main_metric(settings, name)
    except LoopmlError:
        return policy
    if main is None:
        try:
            main = champion_spec(settings, name).experiment.main_metric
        except LoopmlError:
            return policy
    metric = decay_metric(main)
    return policy if metric is None else policy.model_copy(update={"metric": metric})


def _reference_source(
    settings: Settings, name: str, options: PassOptions
) -> tuple[Path, str | None]:
    if options.reference is not None:
        return options.reference, options.target
    spec: PipelineSpec = champion_spec(settings, name)
    return training_data(spec), options.target or spec.experiment.target
