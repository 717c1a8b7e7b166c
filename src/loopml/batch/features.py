"""Batch scoring of entity-only files for versions trained from a feature store.

A file scored with a version that carries a :class:`~loopml.features.FeatureBinding`
may hold only the entity keys and request-time columns: the stored features are joined
from Feast's offline store with ``get_historical_features``, point-in-time, at each
row's event time when the file has the binding's timestamp column, else at the batch's
time (now). A file that already holds every feature column is scored as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from loopml.core.errors import DataError, InputError
from loopml.core.settings import Settings

ROW = "__loopml_row"


def with_offline_features(
    settings: Settings, name: str, version: str, frame: pd.DataFrame, where: str
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``frame`` with its stored features joined, and its entity columns (for the output).

    Returns ``(frame, None)`` unchanged for versions without a binding or files that
    already hold every feature column.
    """
    from loopml.features import FeatureBinding, open_store
    from loopml.registry.models import get_version

    binding = FeatureBinding.from_tags(get_version(settings, name, version).tags)
    if binding is None or set(binding.feature_columns) <= {str(c) for c in frame.columns}:
        return frame, None
    missing = [key for key in binding.entity_keys if key not in frame.columns]
    if missing:
        raise InputError(
            where,
            f"missing entity key column(s) {', '.join(missing)}",
            f"the entity keys {', '.join(binding.entity_keys)} (the features come from the "
            f"feature store {binding.repo})",
        )
    stamp = binding.event_timestamp
    identity = [*binding.entity_keys, *([stamp] if stamp in frame.columns else [])]
    entities = frame[identity].copy()
    entity_df = frame.drop(columns=[c for c in binding.feature_columns if c in frame.columns])
    when = (
        pd.to_datetime(frame[stamp], utc=True, errors="coerce")
        if stamp in frame.columns
        else pd.Series(datetime.now(UTC), index=frame.index)
    )
    if when.isna().any():
        row = int(when.isna().to_numpy().argmax())
        raise InputError(f"{where} row {row}", f"{stamp!r} is not a date-time", "ISO 8601")
    entity_df = entity_df.copy()
    entity_df[stamp] = when.to_numpy()
    entity_df[ROW] = range(len(frame))
    store = open_store(settings.feature_repo or binding.repo)
    try:
        joined: Any = store.get_historical_features(
            entity_df=entity_df, features=list(binding.features)
        ).to_df()
    except Exception as exc:
        raise DataError(f"Feast could not join the features: {type(exc).__name__}: {exc}") from exc
    joined = joined.sort_values(ROW, kind="stable").reset_index(drop=True)
    joined.index = frame.index
    return joined.drop(columns=[ROW, stamp, *binding.entity_keys]), entities


def join_offline_file(
    settings: Settings, name: str, version: str, source: Any, folder: Any
) -> tuple[Any, pd.DataFrame | None]:
    """The file to score: ``source`` itself, or its features joined into ``folder``.

    Only a version with a feature binding reads the whole file (entity files are keys
    and timestamps); every other version's file streams through the engine untouched.
    Returns the path to score and the entity columns to put back in front of the output
    (``None`` when nothing was joined).
    """
    from pathlib import Path

    from loopml.batch.files import read_table
    from loopml.features import FeatureBinding
    from loopml.registry.models import get_version

    if FeatureBinding.from_tags(get_version(settings, name, version).tags) is None:
        return source, None
    frame, entities = with_offline_features(
        settings, name, version, read_table(source), f"{source} columns"
    )
    if entities is None:
        return source, None
    joined = Path(folder) / "joined-input.parquet"
    frame.reset_index(drop=True).to_parquet(joined, index=False)
    return joined, entities.reset_index(drop=True)
