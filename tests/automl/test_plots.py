"""Figures from holdout predictions, for both problem types."""

from __future__ import annotations

import io

from matplotlib.figure import Figure

from loopml.automl import plots
from tests.automl.frames import classification, raw, regression, run


def test_classification_figures_with_importances_or_permutation() -> None:
    result = run(
        classification(),
        "classification",
        "F1",
        raw({"pca": True}, estimator_list=["rf", "knn"]),
    )
    rf = plots.figures_for(result, result.candidate("rf"))
    knn = plots.figures_for(result, result.candidate("knn"))
    expected = {"confusion_matrix", "roc_curve", "pr_curve", "feature_importance"}
    assert set(rf) == expected and set(knn) == expected
    assert all(isinstance(figure, Figure) for figure in [*rf.values(), *knn.values()])
    rf_bars = [t.get_text() for t in rf["feature_importance"].axes[0].get_yticklabels()]
    knn_bars = [t.get_text() for t in knn["feature_importance"].axes[0].get_yticklabels()]
    assert set(rf_bars) <= {f"pca{i}" for i in range(8)}  # what the forest saw
    assert set(knn_bars) <= {"x0", "x1", "x2", "x3", "x4", "x5", "color"}  # raw columns
    counts = rf["confusion_matrix"].axes[0].texts
    assert sum(int(t.get_text()) for t in counts) == len(result.y_holdout)


def test_regression_figures() -> None:
    result = run(regression(), "regression", "RMSE", raw(estimator_list=["lr"]))
    figures = plots.figures_for(result, result.best)
    assert set(figures) == {"residuals", "prediction_error", "feature_importance"}
    points = figures["residuals"].axes[0].collections[0].get_offsets()
    assert len(points) == len(result.y_holdout)
    png = io.BytesIO()
    figures["prediction_error"].savefig(png, format="png")  # renders without pyplot
    assert png.getvalue()[:4] == b"\x89PNG"
