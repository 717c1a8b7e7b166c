"""Figures for each candidate, from its holdout predictions (matplotlib, no display needed).

Figures are built on ``matplotlib.figure.Figure`` directly, never through
pyplot: no backend is switched, no global state changes, no display is
needed (saving renders with Agg), and figures are freed with their last
reference. Each function returns the figure for the caller to save or log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from loopml.automl.compare import Candidate
    from loopml.automl.run import AutoMLResult


def _figure(title: str) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5), dpi=100)
    axes = figure.add_subplot()
    axes.set_title(title)
    return figure, axes


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> Figure:
    from sklearn.metrics import confusion_matrix as matrix

    counts = matrix(y_true, y_pred, labels=list(range(len(labels))))
    figure, axes = _figure("Confusion matrix (holdout)")
    axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (row, column), value in np.ndenumerate(counts):
        axes.text(
            column,
            row,
            str(value),
            ha="center",
            va="center",
            color="white" if value > counts.max() / 2 else "black",
        )
    return figure


def roc_curve(y_true: np.ndarray, scores: np.ndarray, labels: list[str]) -> Figure:
    from sklearn.metrics import auc
    from sklearn.metrics import roc_curve as curve

    figure, axes = _figure("ROC (holdout)")
    for index in _curve_classes(labels):
        fpr, tpr, _ = curve(y_true == index, scores[:, index])
        axes.plot(fpr, tpr, label=f"{labels[index]} (AUC {auc(fpr, tpr):.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.legend(loc="lower right")
    return figure


def pr_curve(y_true: np.ndarray, scores: np.ndarray, labels: list[str]) -> Figure:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    figure, axes = _figure("Precision-recall (holdout)")
    for index in _curve_classes(labels):
        precision, recall, _ = precision_recall_curve(y_true == index, scores[:, index])
        ap = average_precision_score(y_true == index, scores[:, index])
        axes.plot(recall, precision, label=f"{labels[index]} (AP {ap:.3f})")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.legend(loc="lower left")
    return figure


def _curve_classes(labels: list[str]) -> list[int]:
    return [1] if len(labels) == 2 else list(range(len(labels)))


def feature_importance(model: Any, names: list[str], top: int = 20) -> Figure | None:
    """Importances or absolute coefficients of the fitted estimator, when it has them."""
    values = getattr(model, "feature_importances_", None)
    if values is None and hasattr(model, "coef_"):
        values = np.abs(np.atleast_2d(model.coef_)).mean(axis=0)
    if values is None or len(values) != len(names):
        return None
    return _importance_figure(
        np.asarray(values, dtype=np.float64), names, "Feature importance", top
    )


def permutation_importance(
    pipeline: Any, X: pd.DataFrame, y: np.ndarray, seed: int = 0, top: int = 20
) -> Figure:
    """How much the holdout score drops when each raw column is shuffled.

    For models that expose no importances (neighbours, blends, stacks). At
    most 2,000 holdout rows and three repeats keep it to seconds.
    """
    from sklearn.inspection import permutation_importance as permute

    rows = np.random.default_rng(seed).permutation(len(X))[:2000]
    found = permute(pipeline, X.iloc[rows], y[rows], n_repeats=3, random_state=seed, n_jobs=1)
    names = [str(c) for c in X.columns]
    title = "Permutation importance (holdout)"
    return _importance_figure(np.asarray(found.importances_mean), names, title, top)


def _importance_figure(values: np.ndarray, names: list[str], title: str, top: int) -> Figure:
    order = np.argsort(values)[-top:]
    figure, axes = _figure(title)
    axes.barh([names[i] for i in order], values[order])
    figure.tight_layout()
    return figure


def residuals(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    figure, axes = _figure("Residuals (holdout)")
    axes.scatter(y_pred, y_true - y_pred, s=6, alpha=0.5)
    axes.axhline(0, color="grey", linestyle="--")
    axes.set_xlabel("predicted")
    axes.set_ylabel("residual")
    return figure


def prediction_error(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    figure, axes = _figure("Prediction error (holdout)")
    axes.scatter(y_true, y_pred, s=6, alpha=0.5)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    axes.plot([low, high], [low, high], color="grey", linestyle="--")
    axes.set_xlabel("true")
    axes.set_ylabel("predicted")
    return figure


def candidate_figures(
    problem_type: str,
    y_true: np.ndarray,
    scores: np.ndarray,
    labels: list[str],
    estimator: Any,
    feature_names: list[str],
    *,
    pipeline: Any = None,
    X_raw: pd.DataFrame | None = None,
    y_raw: np.ndarray | None = None,
) -> dict[str, Figure]:
    """Every figure that fits the problem type, by file name.

    ``y_true`` is encoded (``0..k-1``) for classification and ``scores`` are
    class probabilities or predicted values. Feature importance comes from
    ``estimator`` when it has importances or coefficients, else, given the
    ``pipeline`` with raw holdout rows ``X_raw`` and their target ``y_raw``
    (in the data's own labels), from permutation importance.
    """
    figures: dict[str, Figure] = {}
    if problem_type == "classification":
        y_pred = np.argmax(scores, axis=1)
        figures["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels)
        if len(np.unique(y_true)) > 1:
            figures["roc_curve"] = roc_curve(y_true, scores, labels)
            figures["pr_curve"] = pr_curve(y_true, scores, labels)
    else:
        figures["residuals"] = residuals(y_true, scores)
        figures["prediction_error"] = prediction_error(y_true, scores)
    importance = feature_importance(estimator, feature_names)
    if importance is None and pipeline is not None and X_raw is not None and y_raw is not None:
        importance = permutation_importance(pipeline, X_raw, y_raw)
    if importance is not None:
        figures["feature_importance"] = importance
    return figures


def figures_for(result: AutoMLResult, candidate: Candidate) -> dict[str, Figure]:
    """Every figure for one candidate of ``result``, from its holdout predictions."""
    return candidate_figures(
        result.problem_type,
        result.y_holdout,
        candidate.holdout_scores,
        [str(label) for label in result.labels],
        candidate.estimator,
        candidate.feature_names,
        pipeline=candidate.model,
        X_raw=result.X_holdout,
        y_raw=result.holdout_labels(),
    )
