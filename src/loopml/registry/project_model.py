"""Models trained outside loopml's AutoML (MLflow Projects), scored like loopml's own.

A project's model is any MLflow pyfunc (``mlflow.pytorch``, ...). ``run_mlflow_project`` writes
a small contract file next to it (:data:`OUTPUT_FILE`): the problem type and, for a classifier,
the class labels in order. The pyfunc's output then reads as loopml needs it:

- classification: column 0 is the index of the predicted class in ``classes`` (the label
  itself when the classes are ``0..k-1``) and columns 1..k the class probabilities; an
  output of k columns is read as probabilities alone (the label is their argmax);
- regression: column 0 is the predicted value.

:class:`ProjectClassifier` and :class:`ProjectRegressor` wrap the pyfunc in the estimator
interface (``classes_``, ``predict``, ``predict_proba``) that evaluation, the champion/
challenger gate, serving and batch scoring already use, so they work on such a model unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

OUTPUT_FILE = "loopml_output.json"
"""The contract file in a project model's artifacts (hashed with them, like the profile)."""


class ProjectRegressor:
    """A pyfunc regressor seen as an estimator: ``predict`` is the output's first column."""

    def __init__(self, pyfunc: Any) -> None:
        self.pyfunc = pyfunc

    def raw(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        """The pyfunc's output as a float matrix, one row per input row."""
        values = np.asarray(self.pyfunc.predict(frame), dtype=np.float64)
        return values.reshape(len(frame), -1)

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return self.raw(frame)[:, 0]


class ProjectClassifier(ProjectRegressor):
    """A pyfunc classifier seen as an estimator with ``classes_`` and ``predict_proba``."""

    def __init__(self, pyfunc: Any, classes: list[Any]) -> None:
        super().__init__(pyfunc)
        self.classes_ = np.asarray(classes)

    def outputs(self, frame: pd.DataFrame) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(labels, probabilities) from one call of the model."""
        values = self.raw(frame)
        k = len(self.classes_)
        if values.shape[1] == k + 1:
            index, probabilities = values[:, 0], values[:, 1:]
        elif values.shape[1] == k:
            probabilities = values
            index = np.argmax(values, axis=1).astype(np.float64)
        else:
            raise ValueError(
                f"the model returned {values.shape[1]} columns per row; a classifier of {k} "
                f"classes must return {k + 1} (class index, then one probability per class) "
                f"or {k} (probabilities)"
            )
        positions = np.rint(index).astype(np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= k):
            raise ValueError(f"the model returned a class index outside 0..{k - 1}")
        return self.classes_[positions], probabilities

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return self.outputs(frame)[0]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return self.outputs(frame)[1]


def contract(problem_type: str, classes: list[Any] | None) -> dict[str, Any]:
    """The content of :data:`OUTPUT_FILE` for a model of ``problem_type``."""
    found: dict[str, Any] = {"problem_type": problem_type}
    if problem_type == "classification":
        found["classes"] = [_plain(label) for label in classes or []]
    return found


def wrap(pyfunc: Any, found: dict[str, Any]) -> ProjectRegressor:
    """The estimator view of ``pyfunc`` under the contract ``found``."""
    if found.get("problem_type") == "classification":
        classes = found.get("classes")
        if not isinstance(classes, list) or len(classes) < 2:
            raise ValueError(f"{OUTPUT_FILE} names no classes (found {classes!r})")
        return ProjectClassifier(pyfunc, classes)
    return ProjectRegressor(pyfunc)


def read_contract(folder: Path) -> dict[str, Any] | None:
    """The contract in a downloaded model folder; ``None`` for a model without one."""
    path = Path(folder) / OUTPUT_FILE
    if not path.is_file():
        return None
    found = json.loads(path.read_text())
    if not isinstance(found, dict):
        raise ValueError(f"{OUTPUT_FILE} is not a JSON object")
    return found


def _plain(label: Any) -> Any:
    """A class label as JSON keeps it (numpy scalars become Python ones)."""
    return label.item() if isinstance(label, np.generic) else label
