"""The feature store: Feast repos for point-in-time training data and online features.

Feast is the optional extra ``loopml[feast]`` (its own lock and venv: Feast 0.67 needs
pandas<3). Nothing here imports Feast at module level; :func:`open_store` does, and a
missing Feast is a clear error naming the extra.
"""

from loopml.features.binding import BINDING_ARTIFACT, BINDING_TAG, FeatureBinding
from loopml.features.store import apply_repo, open_store, repo_dir

__all__ = [
    "BINDING_ARTIFACT",
    "BINDING_TAG",
    "FeatureBinding",
    "apply_repo",
    "open_store",
    "repo_dir",
]
