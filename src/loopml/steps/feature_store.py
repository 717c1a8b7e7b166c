"""The step that loads training data from a Feast feature store, point-in-time correct.

``entities`` is a table (a file or one SQL query) of entity keys, event timestamps, the
target and any request-time columns (known when a prediction is asked for, e.g. a
transaction's amount). Feast joins each row with the feature values as they were at
that row's event time (``get_historical_features``), so no value written later leaks
into training. The entity keys and the timestamp identify rows and are not features:
they are dropped from the training frame and recorded instead, with the feature
references, as the :class:`~loopml.features.FeatureBinding` that ``register_model``
puts on the version (tag and artifact) for serving and batch scoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from loopml.core.access import DataPolicy
from loopml.core.context import StepContext
from loopml.core.errors import DataError
from loopml.steps.base import StepParams, step
from loopml.steps.data import FileSource, SqlSource, _peek_file, _peek_sql
from loopml.steps.frames import store_frame

BINDING_VALUE = "feature_store"
"""``context.values`` key of the binding (JSON), read by ``register_model``."""
ROW = "__loopml_row"


class FeatureStoreSource(StepParams):
    """A Feast repo, the entity rows to join and the features to join them with."""

    repo: str = Field(
        description="Feast repo folder (or its feature_store.yaml), relative to the spec file."
    )
    entities: FileSource | SqlSource = Field(
        description=(
            "Entity keys, event timestamps, the target and request-time columns: a file "
            "({path: ...}) or one query ({source|url, query})."
        )
    )
    features: list[str] = Field(
        default_factory=list, description="Feature references 'view:feature'."
    )
    feature_service: str | None = Field(
        default=None, description="A Feast feature service instead of `features`."
    )
    event_timestamp: str = Field(
        default="event_timestamp", description="Column of `entities` holding the event time."
    )
    allow_override: list[str] = Field(
        default_factory=list,
        description=(
            "Feature columns a prediction request may send to override the stored value "
            "('*' for all); by default stored values always win."
        ),
    )
    frame: str = Field(default="train", description="Name the joined frame gets.")

    @model_validator(mode="after")
    def _features_or_service(self) -> FeatureStoreSource:
        if bool(self.features) == (self.feature_service is not None):
            raise ValueError("give exactly one of `features` (a list of refs) or `feature_service`")
        for ref in self.features:
            view, sep, name = ref.partition(":")
            if not (sep and view and name):
                raise ValueError(f"feature {ref!r} is not a reference 'view:feature'")
        return self


def _access(params: FeatureStoreSource, base_dir: Path | None, policy: DataPolicy) -> None:
    policy.local_file(params.repo, base_dir)
    if isinstance(params.entities, FileSource):
        policy.local_file(params.entities.path, base_dir)
    else:
        policy.sql_url(params.entities.url, params.entities.source)


def _peek(params: FeatureStoreSource, base_dir: Path) -> list[str] | None:
    """Entity columns plus the referenced features (a service needs Feast: not peeked)."""
    if params.feature_service is not None:
        return None
    entities = params.entities
    head = _peek_file(entities, base_dir) if isinstance(entities, FileSource) else None
    if isinstance(entities, SqlSource):
        head = _peek_sql(entities, base_dir)
    if head is None:
        return None
    return [*head, *(ref.split(":", 1)[1] for ref in params.features)]


def _read_entities(context: StepContext, params: FeatureStoreSource) -> Any:
    """The entity table, through the file or SQL loader (same checks, same policy)."""
    from loopml.steps.data import load_data_from_file, load_data_from_sql

    scratch = "__entities"
    loaded, before = context.loaded, dict(context.data)
    source = params.entities.model_copy(update={"frame": scratch})
    if isinstance(source, FileSource):
        load_data_from_file(context, source)
    else:
        load_data_from_sql(context, source)
    frame = context.data.pop(scratch)
    context.loaded = loaded
    context.data.update(before)
    return frame


@step(
    "load_data_from_feature_store",
    params=FeatureStoreSource,
    peek_columns=_peek,
    check_access=_access,
    outputs=("data/{frame}", "loaded", f"values/{BINDING_VALUE}"),
)
def load_data_from_feature_store(context: StepContext, params: FeatureStoreSource) -> None:
    """Join entity rows with Feast features as of each row's event time (point-in-time)."""
    import pandas as pd

    from loopml.features import FeatureBinding, open_store
    from loopml.features.store import join_keys, repo_dir, resolve_features

    policy = DataPolicy.from_settings(context.settings)
    _access(params, context.base_dir, policy)
    entities = _read_entities(context, params)
    repo = repo_dir(params.repo, context.base_dir)
    store = open_store(repo)
    refs, wanted = resolve_features(store, list(params.features), params.feature_service)
    keys = join_keys(store, refs)
    needed = [*keys, params.event_timestamp]
    missing = [name for name in needed if name not in entities.columns]
    if missing:
        raise DataError(
            f"the entities table lacks {', '.join(missing)}; it has "
            f"{', '.join(map(str, entities.columns))} (the features' entity join keys are "
            f"{', '.join(keys)}, the event time column is {params.event_timestamp!r})"
        )
    stamps = pd.to_datetime(entities[params.event_timestamp], utc=True, errors="coerce")
    if stamps.isna().any():
        row = int(stamps.isna().to_numpy().argmax())
        raise DataError(
            f"entities row {row}: {params.event_timestamp!r} is not a date-time "
            f"({entities[params.event_timestamp].iloc[row]!r})"
        )
    entity_df = entities.assign(**{params.event_timestamp: stamps, ROW: range(len(entities))})
    context.progress(f"joining {len(refs)} features from {repo} (point-in-time)", 0, None)
    try:
        joined = store.get_historical_features(entity_df=entity_df, features=wanted).to_df()
    except DataError:
        raise
    except Exception as exc:  # Feast's errors name the view or source at fault
        raise DataError(f"Feast could not join the features: {type(exc).__name__}: {exc}") from exc
    joined = joined.sort_values(ROW, kind="stable").reset_index(drop=True)
    columns = {ref: ref.split(":", 1)[1] for ref in refs}
    frame = joined.drop(columns=[ROW, params.event_timestamp, *keys])
    binding = FeatureBinding(
        repo=str(repo),
        features=tuple(refs),
        entity_keys=tuple(keys),
        feature_service=params.feature_service,
        columns=columns,
        allow_override=tuple(params.allow_override),
        event_timestamp=params.event_timestamp,
    )
    context.values[BINDING_VALUE] = binding.to_json()
    store_frame(context, params.frame, frame, f"feast:{repo}")


def record_binding(context: StepContext, model_run_id: str, binding: str) -> dict[str, str]:
    """Log the binding as an artifact of the model's run; the version tag that carries it."""
    from loopml.features import BINDING_ARTIFACT, BINDING_TAG
    from loopml.registry.tracking import use_tracking

    mlflow = use_tracking(context.settings)
    mlflow.MlflowClient().log_text(model_run_id, binding, BINDING_ARTIFACT)
    return {BINDING_TAG: binding}
