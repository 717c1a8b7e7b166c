"""AutoML on scikit-learn: estimator catalog, preprocessing, shared-fold CV compare, tune, ensemble.

Speaks PyCaret's vocabulary and does the work once. Imports only
``loopml.core`` of our own code. Importing this package stays light (the
parameter models only); scikit-learn and friends load when training starts.

    from loopml.automl import TrainParams, run_automl

    params = TrainParams.model_validate(raw, context={"problem_type": "classification"})
    result = run_automl(frame, "Class", "classification", "F1", params)
    result.leaderboard, result.best.model.predict(new_rows)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopml.automl.config import FeatureEngineeringParams, ModelingParams, TrainParams

if TYPE_CHECKING:
    from loopml.automl.compare import Candidate
    from loopml.automl.run import AutoMLResult, run_automl

__all__ = [
    "AutoMLResult",
    "Candidate",
    "FeatureEngineeringParams",
    "ModelingParams",
    "TrainParams",
    "run_automl",
]

_LAZY = {
    "AutoMLResult": "loopml.automl.run",
    "run_automl": "loopml.automl.run",
    "Candidate": "loopml.automl.compare",
}


def __getattr__(name: str) -> Any:
    """Load the training machinery on first use, not when a spec is validated."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
