"""AutoML on scikit-learn: estimator catalog, preprocessing, CV compare, tune, ensemble."""
