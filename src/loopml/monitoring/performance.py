"""How well the model does in a window: from feedback labels, or estimated while they are late.

Both are tallied chunk by chunk into a confusion matrix (or error sums for
regression), so a window never has to fit in memory.

The estimate follows the idea of NannyML's confidence-based performance
estimation (CBPE): if the model's probabilities are calibrated, a row
predicted as class ``k`` with probabilities ``p`` is truly class ``c`` with
probability ``p[c]``. Adding ``p`` to column ``k`` of a confusion matrix for
every row gives the *expected* confusion matrix, and from it expected
accuracy, precision, recall and F1. Assumptions, stated because they decide
when to trust it: probabilities are calibrated (on data like the reference),
and only the inputs moved (covariate shift), not the relation between inputs
and label (concept drift), which no label-free method can see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.monitoring.sketch import MISSING, category_key


@dataclass
class ConfusionTally:
    """A confusion matrix keyed by (true class, predicted class); counts may be fractional."""

    cells: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def rows(self) -> float:
        return sum(self.cells.values())

    def add(self, truth: str, predicted: str, amount: float) -> None:
        self.cells[(truth, predicted)] = self.cells.get((truth, predicted), 0.0) + amount

    def update_labels(self, labels: pd.Series[Any], predictions: pd.Series[Any]) -> None:
        """Count the rows that have a label."""
        known = labels.notna().to_numpy()
        if not known.any():
            return
        pairs = pd.DataFrame(
            {
                "truth": [category_key(v) for v in labels.to_numpy()[known]],
                "predicted": [category_key(v) for v in predictions.to_numpy()[known]],
            }
        )
        counted = pairs.groupby(["truth", "predicted"]).size()
        for pair, number in zip(counted.index.tolist(), counted.tolist(), strict=True):
            self.add(str(pair[0]), str(pair[1]), float(number))

    def update_expected(self, probabilities: pd.Series[Any], predictions: pd.Series[Any]) -> None:
        """Add each row's class probabilities to the column of the class it was predicted as."""
        given = probabilities.map(lambda value: isinstance(value, Mapping | list | tuple)).to_numpy(
            dtype=bool
        )
        if not given.any():
            return
        records = [
            value if isinstance(value, Mapping) else dict(enumerate(value))
            for value in probabilities.to_numpy()[given]
        ]
        table = pd.DataFrame.from_records(records).fillna(0.0).astype(np.float64)
        table.columns = [category_key(c) for c in table.columns]
        table = table.T.groupby(level=0).sum().T  # classes spelt two ways become one
        predicted = [category_key(v) for v in predictions.to_numpy()[given]]
        sums = table.groupby(np.asarray(predicted)).sum()
        for predicted_class, row in sums.iterrows():
            for truth, amount in row.items():
                if amount:
                    self.add(str(truth), str(predicted_class), float(amount))

    def merge(self, other: ConfusionTally) -> None:
        for (truth, predicted), amount in other.cells.items():
            self.add(truth, predicted, amount)

    def metrics(self) -> dict[str, float]:
        """accuracy, precision, recall, f1 (of the positive class), f1_macro, kappa, mcc, rows."""
        total = self.rows
        if not total:
            return {}
        classes = sorted({c for pair in self.cells for c in pair if c != MISSING})
        per_class: dict[str, tuple[float, float, float]] = {}
        for cls in classes:
            hit = self.cells.get((cls, cls), 0.0)
            predicted = sum(v for (_, p), v in self.cells.items() if p == cls)
            actual = sum(v for (t, _), v in self.cells.items() if t == cls)
            precision = hit / predicted if predicted else 0.0
            recall = hit / actual if actual else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_class[cls] = (precision, recall, f1)
        correct = sum(v for (t, p), v in self.cells.items() if t == p)
        result = {"rows": total, "accuracy": correct / total}
        if classes:
            result["f1_macro"] = float(np.mean([f1 for _, _, f1 in per_class.values()]))
            positive = positive_class(classes)
            precision, recall, f1 = per_class[positive]
            result.update({"precision": precision, "recall": recall, "f1": f1})
            result.update(self._agreement(classes, total, correct))
        return result

    def _agreement(self, classes: list[str], total: float, correct: float) -> dict[str, float]:
        """Cohen's kappa and the (multiclass) Matthews correlation, as scikit-learn has them."""
        predicted = [sum(v for (_, p), v in self.cells.items() if p == c) for c in classes]
        actual = [sum(v for (t, _), v in self.cells.items() if t == c) for c in classes]
        chance = sum(p * t for p, t in zip(predicted, actual, strict=True))
        expected = chance / (total * total)
        kappa = (correct / total - expected) / (1 - expected) if expected < 1 else 0.0
        spread = (total * total - sum(p * p for p in predicted)) * (
            total * total - sum(t * t for t in actual)
        )
        mcc = (correct * total - chance) / math.sqrt(spread) if spread > 0 else 0.0
        return {"kappa": kappa, "mcc": mcc}


def positive_class(classes: list[str]) -> str:
    """The class F1, precision and recall are about: the larger of two (1, True, "yes")."""
    return sorted(classes)[-1]


@dataclass
class RegressionTally:
    """Sums for MAE and RMSE over the rows that have a label."""

    rows: int = 0
    absolute: float = 0.0
    squared: float = 0.0
    truth_sum: float = 0.0
    truth_squared: float = 0.0

    def update(self, labels: pd.Series[Any], predictions: pd.Series[Any]) -> None:
        truth = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        guess = pd.to_numeric(predictions, errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        error = truth - guess
        known = ~np.isnan(error)
        error, truth = error[known], truth[known]
        self.rows += int(error.size)
        self.absolute += float(np.abs(error).sum())
        self.squared += float(np.einsum("i,i->", error, error))
        self.truth_sum += float(truth.sum())
        self.truth_squared += float(np.einsum("i,i->", truth, truth))

    def merge(self, other: RegressionTally) -> None:
        self.rows += other.rows
        self.absolute += other.absolute
        self.squared += other.squared
        self.truth_sum += other.truth_sum
        self.truth_squared += other.truth_squared

    def metrics(self) -> dict[str, float]:
        """mae, mse, rmse and r2 (when the labels vary), rows."""
        if not self.rows:
            return {}
        result = {
            "rows": float(self.rows),
            "mae": self.absolute / self.rows,
            "mse": self.squared / self.rows,
            "rmse": math.sqrt(self.squared / self.rows),
        }
        spread = self.truth_squared - self.truth_sum * self.truth_sum / self.rows
        if spread > 0:
            result["r2"] = 1 - self.squared / spread
        return result


HIGHER_IS_BETTER = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "f1_macro": True,
    "kappa": True,
    "mcc": True,
    "r2": True,
    "mae": False,
    "mse": False,
    "rmse": False,
}

MAIN_METRICS = {
    "accuracy": "accuracy",
    "auc": "f1",  # a ranking metric needs every row's score; F1 is what labels can tell
    "recall": "recall",
    "prec.": "precision",
    "precision": "precision",
    "f1": "f1",
    "kappa": "kappa",
    "mcc": "mcc",
    "mae": "mae",
    "mse": "mse",
    "rmse": "rmse",
    "r2": "r2",
    "rmsle": "rmse",
    "mape": "mae",
}
"""The spec's ``main_metric`` (PyCaret's names) as the figure the monitor computes per window."""
