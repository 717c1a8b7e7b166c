"""What a model trained from a feature store needs to find its features again.

A version trained by ``load_data_from_feature_store`` carries a :class:`FeatureBinding`
as the version tag :data:`BINDING_TAG` (JSON) and as the artifact
:data:`BINDING_ARTIFACT` of its model run: the Feast repo, the feature references
(or service), the entity join keys and which request-sent values may override stored
ones. Serving and batch scoring read it back to join the same features.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from loopml.core.errors import ModelLoadError

BINDING_TAG = "loopml.feature_store"
BINDING_ARTIFACT = "feature_store.json"


@dataclass(frozen=True)
class FeatureBinding:
    """The feature store inputs of one model version."""

    repo: str
    """Absolute path of the Feast repo folder (holding ``feature_store.yaml``)."""
    features: tuple[str, ...]
    """Feature references ``view:feature``, resolved from the service when one was named."""
    entity_keys: tuple[str, ...]
    """Join keys of the entities (``customer_id``); requests send these."""
    feature_service: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    """Training-frame column of each feature reference (``view:feature`` -> ``feature``)."""
    allow_override: tuple[str, ...] = ()
    """Feature columns a request may send to override the stored value; ``*`` means all."""
    event_timestamp: str = "event_timestamp"

    def may_override(self, column: str) -> bool:
        return "*" in self.allow_override or column in self.allow_override

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return tuple(self.columns.get(ref, ref.split(":", 1)[-1]) for ref in self.features)

    def to_json(self) -> str:
        data = asdict(self)
        data["columns"] = dict(self.columns)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = BINDING_TAG) -> FeatureBinding:
        try:
            data: Any = json.loads(text)
            return cls(
                repo=str(data["repo"]),
                features=tuple(str(ref) for ref in data["features"]),
                entity_keys=tuple(str(key) for key in data["entity_keys"]),
                feature_service=data.get("feature_service"),
                columns={str(k): str(v) for k, v in dict(data.get("columns") or {}).items()},
                allow_override=tuple(str(c) for c in data.get("allow_override") or ()),
                event_timestamp=str(data.get("event_timestamp") or "event_timestamp"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{where} is not a feature binding: {exc}") from exc

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> FeatureBinding | None:
        """The binding recorded on a version, ``None`` when it was not trained from features."""
        text = tags.get(BINDING_TAG)
        return None if not text else cls.from_json(text)
