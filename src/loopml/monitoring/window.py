"""One window of the prediction log, tallied chunk by chunk, and what its checks found."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from loopml.monitoring.drift import ColumnDrift, categorical_drift, numeric_drift
from loopml.monitoring.performance import ConfusionTally, RegressionTally
from loopml.monitoring.reference import ColumnReference, Reference
from loopml.monitoring.sketch import CategoricalSketch, NumericSketch
from loopml.store.clock import utc

LOG_COLUMNS = frozenset(
    {"prediction_id", "created_at", "model_version", "prediction", "probabilities", "label"}
)
TOP_CATEGORIES = 12


@dataclass(frozen=True)
class SchemaSkew:
    """Columns the reference has and the window lacks, the reverse, and values of a new type."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    retyped: dict[str, int] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return bool(self.missing or self.extra or self.retyped)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing columns {', '.join(self.missing)}")
        if self.extra:
            parts.append(f"unexpected columns {', '.join(self.extra)}")
        if self.retyped:
            parts.append(
                "non-numeric values in numeric columns "
                + ", ".join(f"{name} ({count} rows)" for name, count in self.retyped.items())
            )
        return "; ".join(parts) or "none"

    def as_dict(self) -> dict[str, Any]:
        return {"missing": self.missing, "extra": self.extra, "retyped": self.retyped}


@dataclass
class WindowResult:
    """Everything the checks of one window found, with the figures plots are drawn from."""

    index: int
    start: datetime
    end: datetime
    rows: int
    complete: bool
    model_version: str | None
    drift: list[ColumnDrift]
    drift_share: float
    prediction_drift: ColumnDrift | None
    schema: SchemaSkew
    performance: dict[str, float]
    estimated: dict[str, float]
    plots: dict[str, dict[str, Any]]

    @property
    def drifted(self) -> list[str]:
        return [column.column for column in self.drift if column.drifted]


class WindowTally:
    """Accumulates one window; memory is bounded by the reference grid, not the rows."""

    def __init__(self, reference: Reference, *, classification: bool) -> None:
        self.reference = reference
        self.classification = classification
        self.sketches = {name: col.new_sketch() for name, col in reference.columns.items()}
        self.prediction = reference.prediction.new_sketch() if reference.prediction else None
        self.seen: set[str] = set()
        self.retyped: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self.rows = 0
        self.start: datetime | None = None
        self.end: datetime | None = None
        self.labelled = ConfusionTally() if classification else None
        self.regression = None if classification else RegressionTally()
        self.expected = ConfusionTally()

    def update(self, frame: pd.DataFrame) -> None:
        """Add a chunk of the prediction log (or any frame with the reference's columns)."""
        if frame.empty:
            return
        self.rows += len(frame)
        self.seen.update(str(c) for c in frame.columns)
        if "created_at" in frame.columns:
            first, last = utc(frame["created_at"].iloc[0]), utc(frame["created_at"].iloc[-1])
            self.start = first if self.start is None else min(self.start, first)
            self.end = last if self.end is None else max(self.end, last)
        if "model_version" in frame.columns:
            self.versions.update(frame["model_version"].dropna().astype(str))
        for name, sketch in self.sketches.items():
            if name in frame.columns:
                self._feed(name, sketch, frame[name])
        if "prediction" in frame.columns:
            predictions = frame["prediction"]
            if self.prediction is not None:
                _feed_values(self.prediction, predictions)
            if "label" in frame.columns:
                if self.labelled is not None:
                    self.labelled.update_labels(frame["label"], predictions)
                elif self.regression is not None:
                    self.regression.update(frame["label"], predictions)
            if self.classification and "probabilities" in frame.columns:
                self.expected.update_expected(frame["probabilities"], predictions)

    def _feed(
        self, name: str, sketch: NumericSketch | CategoricalSketch, values: pd.Series[Any]
    ) -> None:
        if isinstance(sketch, NumericSketch):
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                sketch.update(values.to_numpy(dtype=np.float64, na_value=np.nan))
                return
            numbers = pd.to_numeric(values, errors="coerce")
            wrong = int((numbers.isna() & values.notna()).sum())
            if wrong:
                self.retyped[name] += wrong
            sketch.update(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            sketch.update(values)

    def result(
        self,
        index: int,
        *,
        complete: bool,
        thresholds: Mapping[str, float] | None = None,
    ) -> WindowResult:
        """The checks of this window, against the reference."""
        thresholds = thresholds or {}
        reference = self.reference
        present = [name for name in reference.columns if name in self.seen]
        drift = [
            _drift(reference.columns[name], self.sketches[name], thresholds.get(name))
            for name in present
        ]
        predicted = None
        if reference.prediction is not None and self.prediction and self.prediction.count:
            predicted = _drift(reference.prediction, self.prediction, thresholds.get("prediction"))
        schema = SchemaSkew(
            missing=[name for name in reference.columns if name not in self.seen],
            extra=sorted(self.seen - set(reference.columns) - LOG_COLUMNS),
            retyped=dict(sorted(self.retyped.items())),
        )
        if self.labelled is not None:
            performance = self.labelled.metrics()
        else:
            performance = self.regression.metrics() if self.regression else {}
        plots = {name: _plot_data(reference.columns[name], self.sketches[name]) for name in present}
        if predicted is not None and reference.prediction and self.prediction:
            plots["prediction"] = _plot_data(reference.prediction, self.prediction)
        now = datetime.now().astimezone()
        return WindowResult(
            index=index,
            start=self.start or now,
            end=self.end or now,
            rows=self.rows,
            complete=complete,
            model_version=self.versions.most_common(1)[0][0] if self.versions else None,
            drift=drift,
            drift_share=sum(c.drifted for c in drift) / len(drift) if drift else 0.0,
            prediction_drift=predicted,
            schema=schema,
            performance=performance,
            estimated=self.expected.metrics(),
            plots=plots,
        )


def tally(
    reference: Reference, chunks: Iterable[pd.DataFrame], *, classification: bool = True
) -> WindowTally:
    """Feed ``chunks`` (any iterable of frames, e.g. Parquet batches) into one window."""
    window = WindowTally(reference, classification=classification)
    for chunk in chunks:
        window.update(chunk)
    return window


def _feed_values(sketch: NumericSketch | CategoricalSketch, values: pd.Series) -> None:
    if isinstance(sketch, NumericSketch):
        numbers = pd.to_numeric(values, errors="coerce")
        sketch.update(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    else:
        sketch.update(values)


def _drift(
    column: ColumnReference, sketch: NumericSketch | CategoricalSketch, threshold: float | None
) -> ColumnDrift:
    if column.numeric is not None and isinstance(sketch, NumericSketch):
        return numeric_drift(column.name, column.numeric, sketch, column.method, threshold)
    assert column.categorical is not None and isinstance(sketch, CategoricalSketch)
    return categorical_drift(column.name, column.categorical, sketch, column.method, threshold)


def _plot_data(
    column: ColumnReference, sketch: NumericSketch | CategoricalSketch
) -> dict[str, Any]:
    """Small, JSON-ready figures of the reference and the window, for the report."""
    if column.numeric is not None and isinstance(sketch, NumericSketch):
        assert column.bins is not None
        ref_edges, ref_density = column.numeric.display(column.bins)
        cur_edges, cur_density = sketch.display(column.bins)
        return {
            "type": "numeric",
            "reference": {"edges": ref_edges.tolist(), "density": ref_density.tolist()},
            "current": {"edges": cur_edges.tolist(), "density": cur_density.tolist()},
            "reference_mean": column.numeric.mean,
            "current_mean": sketch.mean,
        }
    assert column.categorical is not None and isinstance(sketch, CategoricalSketch)
    both = Counter(column.categorical.counts) + Counter(sketch.counts)
    keys = [key for key, _ in both.most_common(TOP_CATEGORIES)]
    return {
        "type": "categorical",
        "categories": keys,
        "reference": column.categorical.shares(keys).tolist(),
        "current": sketch.shares(keys).tolist(),
    }
