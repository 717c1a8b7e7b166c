"""AutoML on scikit-learn: estimator catalog, preprocessing, shared-fold CV compare, tune, ensemble.

Speaks PyCaret's vocabulary, does the work once. Imports only ``loopml.core``
of our own code.
"""

from loopml.automl.config import FeatureEngineeringParams, ModelingParams, TrainParams

__all__ = ["FeatureEngineeringParams", "ModelingParams", "TrainParams"]
