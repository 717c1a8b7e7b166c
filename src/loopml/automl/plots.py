"""Figures for each candidate, from its holdout predictions (matplotlib, no display needed)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _figure(title: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5), dpi=100)
    axes = figure.add_subplot()
    axes.set_title(title)
    return figure, axes


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> Any:
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


def roc_curve(y_true: np.ndarray, scores: np.ndarray, labels: list[str]) -> Any:
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


def pr_curve(y_true: np.ndarray, scores: np.ndarray, labels: list[str]) -> Any:
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


def feature_importance(model: Any, names: list[str], top: int = 20) -> Any | None:
    """Importances or absolute coefficients of the fitted estimator, when it has them."""
    values = getattr(model, "feature_importances_", None)
    if values is None and hasattr(model, "coef_"):
        values = np.abs(np.atleast_2d(model.coef_)).mean(axis=0)
    if values is None or len(values) != len(names):
        return None
    order = np.argsort(values)[-top:]
    figure, axes = _figure("Feature importance")
    axes.barh([names[i] for i in order], np.asarray(values)[order])
    figure.tight_layout()
    return figure


def residuals(y_true: np.ndarray, y_pred: np.ndarray) -> Any:
    figure, axes = _figure("Residuals (holdout)")
    axes.scatter(y_pred, y_true - y_pred, s=6, alpha=0.5)
    axes.axhline(0, color="grey", linestyle="--")
    axes.set_xlabel("predicted")
    axes.set_ylabel("residual")
    return figure


def prediction_error(y_true: np.ndarray, y_pred: np.ndarray) -> Any:
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
) -> dict[str, Any]:
    """Every figure that fits the problem type, by file name."""
    figures: dict[str, Any] = {}
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
    if importance is not None:
        figures["feature_importance"] = importance
    return figures
