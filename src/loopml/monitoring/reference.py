"""The reference a window is compared with: per-column sketches of the data the model knows.

Today a reference is built from a data file or frame (the champion's
training data, or a sample of it). The hook for the reference profile
stored with a model (gates issue) is :meth:`Reference.from_frame`: anything
that can hand over a representative sample frame plugs in there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.errors import DataError
from loopml.monitoring.drift import method_for
from loopml.monitoring.sketch import (
    MISSING,
    CategoricalSketch,
    IntArray,
    NumericSketch,
    display_bins,
    grid_for,
)

NUMERIC, DISCRETE, BINARY, CATEGORICAL = "numeric", "discrete", "binary", "categorical"
DISCRETE_LIMIT = 5
PREDICTION = "prediction"


@dataclass
class ColumnReference:
    """What the reference knows about one column."""

    name: str
    kind: str
    method: str
    numeric: NumericSketch | None = None
    categorical: CategoricalSketch | None = None
    bins: IntArray | None = None

    @property
    def is_numeric(self) -> bool:
        return self.numeric is not None

    def new_sketch(self) -> NumericSketch | CategoricalSketch:
        """An empty sketch for a window, on this reference's grid."""
        if self.numeric is not None:
            return NumericSketch(self.numeric.edges)
        return CategoricalSketch()


@dataclass
class Reference:
    """Sketches of every feature column (and of the model's output, when known)."""

    rows: int
    columns: dict[str, ColumnReference]
    prediction: ColumnReference | None = None
    target: str | None = None
    dtypes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        target: str | None = None,
        prediction: pd.Series[Any] | None = None,
        classification: bool | None = None,
    ) -> Reference:
        """Sketch ``frame``'s columns; ``target`` is left out of the features.

        The reference side of prediction drift is ``prediction`` when given
        (the champion's answers on this data, see
        :func:`loopml.monitoring.champion.champion_predictions`), else a
        ``prediction`` column of the frame; without either, prediction drift
        is not checked. ``classification`` says how to compare predictions
        (as classes or as numbers); by default float predictions are numbers.
        """
        if frame.empty:
            raise DataError("the reference data has no rows; give the model's training data")
        if target is not None and target not in frame.columns:
            raise DataError(
                f"the reference data has no target column {target!r}; "
                f"its columns are {', '.join(map(str, frame.columns))}"
            )
        rows = len(frame)
        outputs = prediction
        if outputs is None and PREDICTION in frame.columns:
            outputs = frame[PREDICTION]
        features = frame.drop(columns=[c for c in (target, PREDICTION) if c in frame.columns])
        columns = {str(name): _column(str(name), features[name], rows) for name in features.columns}
        predicted = None
        if outputs is not None:
            if classification is None:
                classification = not pd.api.types.is_float_dtype(outputs)
            predicted = _column(PREDICTION, outputs, rows, force_categorical=classification)
        return cls(
            rows=rows,
            columns=columns,
            prediction=predicted,
            target=target,
            dtypes={str(name): str(features[name].dtype) for name in features.columns},
        )

    @classmethod
    def from_file(cls, path: Path, *, target: str | None = None) -> Reference:
        """Read a CSV (optionally zipped) or Parquet file and sketch it."""
        return cls.from_frame(read_table(path), target=target)


def read_table(path: Path) -> pd.DataFrame:
    """A reference data file as a frame: ``.csv``, ``.csv.gz``, ``.zip`` (a CSV) or ``.parquet``."""
    if not path.exists():
        raise DataError(f"reference data {path} does not exist; pass the model's training data")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz", ".zip")):
            return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read reference data {path}: {exc}") from exc
    raise DataError(
        f"reference data {path}: unknown file type; use .csv, .csv.gz, .zip (one CSV) or .parquet"
    )


def kind_of(distinct: int, numeric: bool) -> str:
    """numeric, discrete (numeric with few values), binary or categorical."""
    if distinct <= 2:
        return BINARY
    if numeric:
        return NUMERIC if distinct > DISCRETE_LIMIT else DISCRETE
    return CATEGORICAL


def _column(
    name: str, values: pd.Series[Any], rows: int, *, force_categorical: bool = False
) -> ColumnReference:
    numeric = (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and not force_categorical
    )
    if numeric:
        data = np.sort(values.to_numpy(dtype=np.float64, na_value=np.nan))
        finite = data[: int((~np.isnan(data)).sum())]
        edges = grid_for(finite)
        kind = kind_of(edges.size, True)
        if kind == NUMERIC:
            sketch = NumericSketch(edges)
            sketch.missing = int(data.size - finite.size)
            sketch.update_sorted(finite)
            cut = np.ceil(np.array([0.005, 0.995]) * finite.size).astype(np.int64) - 1
            bins = display_bins(edges, finite[cut.clip(0, finite.size - 1)])
            return ColumnReference(name, kind, method_for(kind, rows), numeric=sketch, bins=bins)
    counts = CategoricalSketch()
    counts.update(values)
    distinct = len([key for key in counts.counts if key != MISSING])
    kind = kind_of(distinct, numeric)
    return ColumnReference(name, kind, method_for(kind, rows), categorical=counts)
