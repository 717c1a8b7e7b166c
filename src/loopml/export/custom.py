"""Converters skl2onnx does not ship: LightGBM/XGBoost (from onnxmltools) and loopml's steps.

skl2onnx finds a converter by the estimator's class; these are added to its
registry with ``update_registered_converter``. loopml's own transformer
classes are registered when an exported pipeline holds one (this layer does
not import ``loopml.automl``; the class comes from the unpickled object).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


def register_all() -> None:
    """Register the gradient-boosting converters of onnxmltools for LightGBM and XGBoost."""
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=classifier_options,
        )
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
            options={"split": None},
        )
    except ImportError:  # pragma: no cover - lightgbm is a core dependency
        pass
    try:
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
        update_registered_converter(
            XGBRegressor,
            "XGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes,
            convert_xgboost,
        )
    except ImportError:  # pragma: no cover - xgboost is a core dependency
        pass


class KeepColumns(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted feature selector as what it does at predict: keep columns ``keep_``.

    Stands in for scikit-learn's selectors (``SelectFromModel``,
    ``SelectKBest``, ``SequentialFeatureSelector``...), whose own converters
    either do not exist or (skl2onnx 1.20's ``SelectFromModel``) build an
    invalid graph; the kept columns are all a selector knows after fitting.
    """

    def __init__(self, keep: Any = None) -> None:
        self.keep = keep
        self.keep_ = np.asarray(keep if keep is not None else [], dtype=np.int64)

    @classmethod
    def of(cls, selector: Any) -> KeepColumns:
        register_loopml(cls)
        return cls(np.flatnonzero(selector.get_support()))

    def fit(self, X: Any, y: Any = None) -> KeepColumns:
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X)[:, self.keep_]


_DONE: set[type] = set()


def register_loopml(cls: type) -> None:
    """Register the converter for loopml's transformer class ``cls`` (by its name)."""
    if cls in _DONE:
        return
    from skl2onnx import update_registered_converter

    shapes, convert = {
        "TrigonometryFeatures": (_trig_shape, _trig_convert),
        "RemoveMulticollinearity": (_keep_shape, _keep_convert),
        "KeepColumns": (_keep_shape, _keep_convert),
    }[cls.__name__]
    update_registered_converter(cls, f"Loopml{cls.__name__}", shapes, convert)
    _DONE.add(cls)


def _same_type(operator: Any, columns: int | None) -> None:
    source = operator.inputs[0].type
    operator.outputs[0].type = source.__class__([source.shape[0], columns])


def _trig_shape(operator: Any) -> None:
    """x, sin(x), cos(x) side by side: three times the columns."""
    count = operator.inputs[0].type.shape[1]
    _same_type(operator, None if not isinstance(count, int) else 3 * count)


def _trig_convert(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxConcat, OnnxCos, OnnxSin

    opv = container.target_opset
    x = operator.inputs[0]
    node = OnnxConcat(
        x,
        OnnxSin(x, op_version=opv),
        OnnxCos(x, op_version=opv),
        axis=1,
        op_version=opv,
        output_names=operator.outputs[:1],
    )
    node.add_to(scope, container)


def _keep_shape(operator: Any) -> None:
    """The kept columns of the input, in order."""
    _same_type(operator, len(operator.raw_operator.keep_))


def _keep_convert(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.algebra.onnx_ops import OnnxGather

    opv = container.target_opset
    keep = np.asarray(operator.raw_operator.keep_, dtype=np.int64)
    node = OnnxGather(
        operator.inputs[0], keep, axis=1, op_version=opv, output_names=operator.outputs[:1]
    )
    node.add_to(scope, container)
