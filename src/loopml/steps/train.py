"""The ``train_model`` step: compare, tune and ensemble models; track every candidate.

Parameters are PyCaret's (``loopml.automl.config.TrainParams``). Each
candidate becomes a nested MLflow run with its parameters, per-fold and
holdout metrics, plots and its whole pipeline; the pipeline run gets the
comparison grid. The best model, by ``main_metric``, is what later steps use.
"""

from __future__ import annotations

import logging
from typing import Any

from loopml.automl.config import TrainParams
from loopml.core.context import StepContext, TrainedModel
from loopml.steps.base import step

log = logging.getLogger(__name__)


@step(
    "train_model",
    params=TrainParams,
    outputs=("data/holdout", "models/best", "reports/comparison", "trained", "warnings"),
    inputs=("data/train",),
)
def train_model(context: StepContext, params: TrainParams) -> None:
    """Compare estimators on shared CV folds (+ tune, blend, stack); log all to MLflow."""
    from loopml.automl.run import run_automl
    from loopml.registry.tracking import use_tracking
    from loopml.steps.tuning import study_host

    frame = context.require_frame()
    experiment = context.experiment
    params, overrides = run_settings(context, params)
    said: list[str] = []

    def say(text: str) -> None:
        log.warning("%s", text)
        said.append(text)

    result = run_automl(
        frame,
        experiment.target,
        experiment.problem_type,
        experiment.main_metric,
        params,
        n_jobs=None if params.modeling_params.n_jobs else context.threads,
        progress=context.progress,
        overrides=overrides,
        study_host=study_host(context.settings, context.run_id, context.mlflow_run_id),
        say=say,
    )
    context.warnings = (*context.warnings, *said)
    mlflow = use_tracking(context.settings)
    example = frame.drop(columns=[experiment.target]).head(5)
    profile = context.reports.get("reference_profile")
    model_uris = _log_candidates(mlflow, result, example, context.progress, profile)
    best = result.best
    mlflow.log_table(result.leaderboard, "comparison.json")
    mlflow.log_text(result.leaderboard.to_csv(index=False), "comparison.csv")
    mlflow.log_metrics({f"best_cv_{_key(k)}": v for k, v in best.mean_metrics.items()})
    mlflow.set_tags({"loopml.best_model": best.name, "loopml.finalized": str(result.finalized)})

    holdout = result.X_holdout.copy()
    holdout[experiment.target] = result.holdout_labels()
    context.data["holdout"] = holdout
    context.models["best"] = best.model
    context.reports["comparison"] = result.leaderboard
    context.trained = TrainedModel(
        estimator=best.name,
        model_uri=model_uris[best.id][1],
        mlflow_run_id=model_uris[best.id][0],
        main_metric=experiment.main_metric,
        main_metric_value=float(best.mean_metrics[experiment.main_metric]),
        seconds=round(result.seconds, 3),
    )


def run_settings(
    context: StepContext, params: TrainParams
) -> tuple[TrainParams, dict[str, dict[str, Any]]]:
    """The parameters this run trains with: the run's seed where the spec sets no
    ``session_id`` (so splits, folds, estimators, resampling and tuning repeat), and
    the smoke profile with its per-estimator caps in a smoke run."""
    modeling = params.modeling_params
    if modeling.session_id is None and context.seed is not None:
        seeded = modeling.model_copy(update={"session_id": context.seed})
        params = params.model_copy(update={"modeling_params": seeded})
    if not context.smoke:
        return params, {}
    from loopml.automl.compare import estimator_ids
    from loopml.automl.smoke import smoke_overrides, smoke_params

    params = smoke_params(params)
    ids = estimator_ids(params, context.experiment.problem_type)
    return params, smoke_overrides(context.experiment.problem_type, ids)


def _log_candidates(
    mlflow: Any, result: Any, example: Any, progress: Any, profile: Any = None
) -> dict[str, tuple[str, str]]:
    from loopml.automl import plots
    from loopml.steps.tracking import CandidateRecord, log_candidate, log_pipeline

    labels = [str(label) for label in result.labels]
    uris: dict[str, tuple[str, str]] = {}
    total = len(result.candidates)
    for done, candidate in enumerate(result.candidates):
        progress("logging candidates to MLflow", done, total)
        preprocess = candidate.model.named_steps["preprocess"]
        try:
            names = [str(n) for n in preprocess.get_feature_names_out()]
        except (AttributeError, ValueError):
            names = []
        figures = plots.candidate_figures(
            result.problem_type,
            result.y_holdout,
            candidate.holdout_scores,
            labels,
            candidate.estimator,
            names,
        )
        tags = {"loopml.estimator_id": candidate.id, "loopml.best": str(candidate is result.best)}
        report = candidate.tuning
        if report is not None:
            figures.update({f"tuning_{name}": fig for name, fig in report.figures.items()})
            tags["loopml.tuning_storage"] = report.storage
            tags["loopml.tuning_trials"] = str(len(report.completed))
        record = CandidateRecord(
            name=candidate.name,
            kind=candidate.kind,
            params=candidate.params,
            fold_metrics=candidate.fold_metrics,
            mean_metrics=candidate.mean_metrics,
            std_metrics=candidate.std_metrics,
            holdout_metrics=candidate.holdout_metrics,
            fit_seconds=candidate.fit_seconds,
            figures=figures,
            tags=tags,
        )
        run_id, uri = log_candidate(
            mlflow,
            record,
            candidate.model,
            model_logger=lambda model: log_pipeline(mlflow, model, example, profile=profile),
        )
        if report is not None:
            from loopml.steps.trial_runs import log_trials

            log_trials(mlflow, run_id, report)
        uris[candidate.id] = (run_id, str(uri))
    progress("logging candidates to MLflow", total, total)
    return uris


def _key(metric: str) -> str:
    from loopml.steps.tracking import metric_key

    return metric_key(metric)
