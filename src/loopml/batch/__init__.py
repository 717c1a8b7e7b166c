"""Batch scoring: registered models on frames, every prediction written to the prediction log.

Used by the inference workers and by ``loopml predict-batch``. Models are
loaded with MLflow (never through ``loopml.automl``) and cached per version.
"""

from loopml.batch.models import LoadedModel, ModelRef, load_model
from loopml.batch.scoring import prediction_id, score_and_log, score_frame

__all__ = ["LoadedModel", "ModelRef", "load_model", "prediction_id", "score_and_log", "score_frame"]
