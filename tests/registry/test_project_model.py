"""How a project-trained pyfunc's output is read: labels, probabilities, and refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.registry.project_model import (
    OUTPUT_FILE,
    ProjectClassifier,
    ProjectRegressor,
    contract,
    read_contract,
    wrap,
)


class Returns:
    """A pyfunc stand-in that answers a fixed matrix (what a real model's predict returns)."""

    def __init__(self, output: Any) -> None:
        self.output = output

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.output


FRAME = pd.DataFrame({"x": [1.0, 2.0, 3.0]})


def test_index_then_probabilities_reads_as_labels_and_probabilities() -> None:
    output = pd.DataFrame([[1.0, 0.2, 0.8], [0.0, 0.9, 0.1], [1.0, 0.4, 0.6]])
    model = wrap(Returns(output), contract("classification", ["no", "yes"]))
    assert isinstance(model, ProjectClassifier)
    labels, probabilities = model.outputs(FRAME)
    assert labels.tolist() == ["yes", "no", "yes"]
    assert probabilities.tolist() == [[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]]
    assert model.classes_.tolist() == ["no", "yes"]


def test_probabilities_alone_label_by_argmax() -> None:
    model = wrap(
        Returns(np.array([[0.3, 0.7], [0.6, 0.4], [0.5, 0.5]])), contract("classification", [0, 1])
    )
    assert model.predict(FRAME).tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    ("output", "words"),
    [
        (np.zeros((3, 4)), "returned 4 columns per row"),
        (np.array([[2.0, 0.5, 0.5]] * 3), "class index outside 0..1"),
        (np.array([[-1.0, 0.5, 0.5]] * 3), "class index outside 0..1"),
    ],
)
def test_an_output_off_the_contract_is_refused(output: Any, words: str) -> None:
    model = wrap(Returns(output), contract("classification", [0, 1]))
    with pytest.raises(ValueError, match=words):
        model.predict_proba(FRAME)


def test_a_regressor_predicts_the_first_column_and_has_no_probabilities() -> None:
    model = wrap(Returns(np.array([[1.5], [2.5], [3.5]])), contract("regression", None))
    assert type(model) is ProjectRegressor and not hasattr(model, "predict_proba")
    assert model.predict(FRAME).tolist() == [1.5, 2.5, 3.5]


def test_the_contract_round_trips_numpy_labels_and_refuses_nonsense(tmp_path: Path) -> None:
    found = contract("classification", np.unique(np.array([1, 0, 1])).tolist())
    (tmp_path / OUTPUT_FILE).write_text(json.dumps(found))
    assert read_contract(tmp_path) == {"problem_type": "classification", "classes": [0, 1]}
    assert read_contract(tmp_path / "elsewhere") is None
    (tmp_path / OUTPUT_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        read_contract(tmp_path)
    with pytest.raises(ValueError, match="names no classes"):
        wrap(Returns(None), {"problem_type": "classification", "classes": [1]})
