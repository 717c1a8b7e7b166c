"""The ``evaluate_model`` step: score a trained model on a frame it never saw."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from loopml.core.context import Evaluation, StepContext
from loopml.core.errors import DataError
from loopml.steps.base import StepParams, step


class EvaluateParams(StepParams):
    """Which model, on which frame."""

    frame: str = Field(
        default="holdout", description="Frame to score; train_model makes 'holdout'."
    )
    model: str = Field(default="best", description="Model to score; train_model makes 'best'.")


@step(
    "evaluate_model",
    params=EvaluateParams,
    outputs=("reports/evaluation", "evaluation"),
    inputs=("models/{model}", "data/{frame}"),
)
def evaluate_model(context: StepContext, params: EvaluateParams) -> None:
    """Score the trained model on the holdout (or another frame); log metrics and plots."""
    import pandas as pd

    from loopml.automl import plots
    from loopml.registry.tracking import use_tracking
    from loopml.steps.tracking import metric_key

    if params.model not in context.models:
        raise DataError(
            f"evaluate_model needs the model {params.model!r}; put train_model before it"
        )
    model = context.models[params.model]
    frame = context.require_frame(params.frame)
    target = context.experiment.target
    if target not in frame.columns:
        raise DataError(f"frame {params.frame!r} has no target column {target!r} to score against")
    context.progress(f"scoring {len(frame)} rows of {params.frame!r}", 0, None)
    y_true, scores, labels, metrics = score_frame(
        model, frame, target, context.experiment.problem_type
    )
    mlflow = use_tracking(context.settings)
    mlflow.log_metrics({f"eval_{params.frame}_{metric_key(k)}": v for k, v in metrics.items()})
    final_step = model.steps[-1][1] if hasattr(model, "steps") else model
    figures = plots.candidate_figures(
        context.experiment.problem_type,
        y_true,
        scores,
        labels,
        getattr(final_step, "estimator_", final_step),
        [],
    )
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"evaluation/{params.frame}/{name}.png")
    shown = (
        context.trained.estimator
        if params.model == "best" and context.trained is not None
        else params.model
    )
    table = pd.DataFrame(
        [
            {
                "Model": shown,
                "Frame": params.frame,
                "Rows": len(frame),
                **{k: round(v, 4) for k, v in metrics.items()},
            }
        ]
    )
    context.reports["evaluation"] = table
    context.evaluation = Evaluation(
        model=shown, frame=params.frame, rows=len(frame), metrics=dict(metrics)
    )


def score_frame(
    model: Any, frame: Any, target: str, problem_type: str
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, float]]:
    """Score ``model`` on ``frame``: (encoded truth, scores, class labels, metrics).

    The gate scores champion and challenger with this same function, so their
    figures are comparable with each other and with ``evaluate_model``'s.
    """
    from loopml.automl.ensemble import member_scores
    from loopml.automl.metrics import scores_for

    X, y_raw = frame.drop(columns=[target]), frame[target].to_numpy()
    if problem_type == "classification":
        classes = np.asarray(model.classes_)
        y_true = _encode(y_raw, classes)
        scores = member_scores(model, X, True)
        y_pred = np.argmax(scores, axis=1)
        labels = [str(c) for c in classes]
    else:
        y_true = y_raw.astype(np.float64)
        scores = y_pred = np.asarray(model.predict(X), dtype=np.float64)
        labels = []
    return y_true, scores, labels, scores_for(problem_type, y_true, y_pred, scores, len(labels))


def _encode(values: Any, classes: np.ndarray) -> np.ndarray:
    index = {label: i for i, label in enumerate(classes.tolist())}
    unknown = sorted({str(v) for v in values.tolist() if v not in index})
    if unknown:
        raise DataError(f"the frame has labels the model never saw: {', '.join(unknown[:10])}")
    return np.asarray([index[v] for v in values.tolist()])
