"""Every catalog estimator with an ONNX converter exports and passes the parity check.

The ones that do not are listed here with why (docs/onnx.md says the same);
a new catalog entry fails this test until it is sorted into one of the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.automl.catalog import CATALOG
from loopml.export.convert import convert_pipeline
from loopml.export.errors import ExportError, ParityError
from loopml.export.parity import compare, require
from loopml.export.runtime import OnnxScorer
from loopml.registry.loading import score
from tests.export.pipelines import fitted, frame, rows, target

REFUSED = {
    ("classification", "svm"): "no predict_proba",  # loopml squashes the decision function
    ("classification", "ridge"): "no predict_proba",
    ("classification", "dummy"): "no ONNX converter",
    ("classification", "lda"): "does not score like the model",  # skl2onnx's LDA probabilities
    ("regression", "dummy"): "no ONNX converter",
}
CASES = [(problem, eid) for problem, entries in CATALOG.items() for eid in entries]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return frame()


@pytest.fixture(scope="module")
def reference(data: pd.DataFrame) -> pd.DataFrame:
    return rows(data)


def _export_and_check(pipeline: Any, reference: pd.DataFrame, classifier: bool) -> Any:
    converted = convert_pipeline(pipeline)
    scorer = OnnxScorer(converted.to_bytes())
    classes = np.asarray(pipeline.classes_).tolist() if classifier else None
    expected = score(pipeline, None, classes, reference)
    return converted, require(compare(expected, scorer.score(reference), classifier), "the model")


@pytest.mark.parametrize(("problem", "estimator_id"), CASES, ids=[f"{p}-{e}" for p, e in CASES])
def test_catalog_estimator_exports_with_parity(
    problem: str, estimator_id: str, data: pd.DataFrame, reference: pd.DataFrame
) -> None:
    y = target(data, problem)
    pipeline = fitted(problem, estimator_id, data, y, fix_imbalance=problem == "classification")
    classifier = problem == "classification"
    why = REFUSED.get((problem, estimator_id))
    if why is not None:
        with pytest.raises(ExportError, match=why):
            _export_and_check(pipeline, reference, classifier)
        return
    converted, parity = _export_and_check(pipeline, reference, classifier)
    assert parity.passed and parity.rows == len(reference) > 200
    assert parity.max_abs_diff <= 1e-5 and parity.label_mismatches == 0
    if classifier:
        assert converted.dropped == ["fix_imbalance"]  # SMOTE is training only
        assert converted.classes == [0, 1]
    names = [item.name for item in converted.inputs]
    assert names == ["amount", "score", "visits", "shop"]
    assert [item.type for item in converted.inputs] == ["float"] * 3 + ["string"]


@pytest.mark.parametrize(
    "params",
    [
        {"trigonometry_features": True, "remove_multicollinearity": True},
        {"normalize": True, "pca": True, "polynomial_features": True},
        {"remove_outliers": True, "feature_selection": True, "normalize_method": "robust"},
    ],
    ids=["loopml-transformers", "scale-pca-poly", "outliers-selection"],
)
def test_feature_engineering_steps_export(
    params: dict[str, Any], data: pd.DataFrame, reference: pd.DataFrame
) -> None:
    y = target(data, "classification")
    pipeline = fitted("classification", "lr", data, y, **params)
    converted, parity = _export_and_check(pipeline, reference, True)
    assert parity.passed
    if params.get("remove_outliers"):
        assert converted.dropped == ["remove_outliers"]


def test_string_labels_come_back_as_labels(data: pd.DataFrame, reference: pd.DataFrame) -> None:
    """A model trained on text labels answers with them (the graph's label is an index)."""
    y = np.where(target(data, "classification") == 1, "fraud", "ok")
    pipeline = fitted("classification", "xgboost", data, y)
    converted, parity = _export_and_check(pipeline, reference, True)
    assert parity.passed and converted.label_index and converted.classes == ["fraud", "ok"]
    got = OnnxScorer(converted.to_bytes()).score(reference.head(20))
    assert set(got.predictions.tolist()) <= {"fraud", "ok"}


def test_xgboost_behind_a_scaler_is_refused_with_the_figure() -> None:
    """float32 scaling moves values across XGBoost's splits: parity must catch it."""
    rng = np.random.default_rng(5)
    n = 400
    data = pd.DataFrame(
        {
            # large values with fine detail: float32 keeps ~7 digits, the splits need more
            "balance": 1e6 + rng.integers(0, 4000, n) * 0.37,
            "age": rng.integers(18, 90, n).astype(float),
        }
    )
    y = ((data["balance"] * 100).round() % 7 < 3).astype(int).to_numpy()
    pipeline = fitted("classification", "xgboost", data, y, normalize=True)
    with pytest.raises(ParityError) as refused:
        _export_and_check(pipeline, rows(data), True)
    assert refused.value.max_abs_diff > 1e-5
    assert f"{refused.value.max_abs_diff:.3g}" in str(refused.value)
    assert "Nothing was written" in str(refused.value)


def test_unconvertible_steps_are_named(data: pd.DataFrame) -> None:
    from imblearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    y = target(data, "classification")
    pipeline = fitted("classification", "lr", data, y)
    odd = Pipeline([("odd", FunctionTransformer(np.log1p)), *pipeline.steps])
    with pytest.raises(ExportError, match=r"step 'odd' is a FunctionTransformer of log1p"):
        convert_pipeline(odd)


def test_without_the_extra_the_error_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ExportError, match=r"pip install 'loopml\[onnx\]'"):
        OnnxScorer(b"")
