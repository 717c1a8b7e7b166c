"""Request rows checked against the model signature, in the one shape every protocol produces.

Each protocol (``/predict`` records, MLflow's four JSON formats and CSV, the
V2 tensors) turns its body into a :class:`Table` through :class:`InputSchema`,
so "a missing column, a wrong type, an empty body" is decided in one place and
answered with an :class:`~loopml.core.errors.InputError` naming the field and
what was expected. All-float signatures keep rows as one float64 matrix: a
one-block frame is several times cheaper to build than a dict of columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.errors import InputError

FLOATS = frozenset({"double", "float"})
INTEGERS = frozenset({"long", "integer"})
_EXPECTED = {
    "double": "a number (double) or null",
    "float": "a number (float) or null",
    "long": "an integer (long)",
    "integer": "an integer (int32)",
    "boolean": "true or false",
    "string": "a string or null",
    "binary": "a string",
    "datetime": "an ISO 8601 date-time string",
}
_DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}


@dataclass(frozen=True)
class Column:
    """One input of the signature: its name, MLflow type name and whether it must be sent."""

    name: str
    kind: str
    required: bool = True

    @property
    def expected(self) -> str:
        return _EXPECTED.get(self.kind, self.kind)


@dataclass
class Table:
    """Checked rows in signature order: a float matrix, or one array/list per column."""

    names: tuple[str, ...]
    n_rows: int
    matrix: np.ndarray[Any, Any] | None = None
    columns: dict[str, Any] | None = None
    extra: tuple[str, ...] = ()
    """Columns the request sent that the signature does not have (dropped before predict)."""

    def column_values(self) -> dict[str, Any]:
        if self.columns is not None:
            return self.columns
        assert self.matrix is not None
        return {name: self.matrix[:, i] for i, name in enumerate(self.names)}

    def to_frame(self) -> pd.DataFrame:
        return concat_frame([self])

    def records(self) -> list[dict[str, Any]]:
        """Rows as JSON-safe dicts (NaN and infinities become null), for the prediction log."""
        if self.matrix is not None:
            if np.isfinite(self.matrix).all():
                names = self.names
                return [dict(zip(names, row, strict=True)) for row in self.matrix.tolist()]
            return [
                {name: _json_safe(value) for name, value in zip(self.names, row, strict=True)}
                for row in self.matrix.tolist()
            ]
        values = {
            name: (list(column.tolist()) if isinstance(column, np.ndarray) else list(column))
            for name, column in self.column_values().items()
        }
        return [
            {name: _json_safe(values[name][i]) for name in self.names} for i in range(self.n_rows)
        ]


def concat_frame(tables: Sequence[Table]) -> pd.DataFrame:
    """One frame of several requests' rows, for one predict call."""
    names = list(tables[0].names)
    if all(table.matrix is not None for table in tables):
        matrices = [table.matrix for table in tables if table.matrix is not None]
        matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
        return pd.DataFrame(matrix, columns=names, copy=False)
    data: dict[str, Any] = {}
    for name in names:
        parts = [table.column_values()[name] for table in tables]
        if len(parts) == 1:
            data[name] = parts[0]
        elif all(isinstance(part, np.ndarray) for part in parts):
            data[name] = np.concatenate(parts)
        else:
            data[name] = [value for part in parts for value in list(part)]
    return pd.DataFrame(data, columns=names)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


class InputSchema:
    """The model's input signature and the checks every request goes through."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self.names = tuple(column.name for column in self.columns)
        self.by_name = {column.name: column for column in self.columns}
        self.all_float = bool(self.columns) and all(c.kind in FLOATS for c in self.columns)

    @classmethod
    def from_mlflow(cls, schema: Any) -> InputSchema:
        """From an MLflow ``Schema`` of named columns (tensor signatures are not served)."""
        if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
            raise InputError(
                "signature",
                "the model has no column-based input signature",
                "a model logged with a signature of named columns (loopml's train_model does)",
            )
        return cls(
            [
                Column(str(spec.name), str(spec.type.name), bool(getattr(spec, "required", True)))
                for spec in schema.inputs
            ]
        )

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "type": c.kind, "required": c.required} for c in self.columns]

    # -- records: [{"col": value, ...}, ...] -------------------------------------------------

    def from_records(self, records: Any, where: str = "records") -> Table:
        """Rows given as a list of objects (or one object) keyed by column name."""
        if isinstance(records, Mapping):
            records = [records]
        if not isinstance(records, list):
            raise InputError(
                where, f"found {_kind(records)}", "an object of column values or a list of them"
            )
        if not records:
            raise InputError(where, "no rows were sent", "at least one row")
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InputError(f"{where}[{i}]", f"found {_kind(record)}", "an object")
        extra = self._extra_keys(records)
        if self.all_float:
            table = self._float_records(records, where)
            return replace(table, extra=extra) if extra else table
        columns = {
            column.name: [record.get(column.name, _MISSING) for record in records]
            for column in self.columns
        }
        for column in self.columns:
            values = columns[column.name]
            for i, value in enumerate(values):
                if value is _MISSING:
                    if column.required:
                        raise InputError(
                            f"{where}[{i}].{column.name}",
                            "missing required column",
                            column.expected,
                        )
                    values[i] = None
        table = self._typed(columns, len(records), lambda name, i: f"{where}[{i}].{name}")
        return replace(table, extra=extra) if extra else table

    def _extra_keys(self, records: list[Any]) -> tuple[str, ...]:
        """Keys outside the signature, in first-seen order (a C-level key-view test per row)."""
        names = self.by_name.keys()
        found: dict[str, None] = {}
        for record in records:
            if not record.keys() <= names:
                for key in record:
                    if key not in names:
                        found[str(key)] = None
        return tuple(found)

    def _float_records(self, records: list[Any], where: str) -> Table:
        names = self.names
        try:
            rows = [[record[name] for name in names] for record in records]
        except KeyError:
            rows = [[record.get(name, _MISSING) for name in names] for record in records]
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                kind = type(value)
                if kind is float or kind is int or value is None:
                    continue
                column = self.columns[j]
                if value is _MISSING:
                    if column.required:
                        raise InputError(
                            f"{where}[{i}].{column.name}",
                            "missing required column",
                            column.expected,
                        )
                    row[j] = None
                    continue
                raise InputError(
                    f"{where}[{i}].{column.name}", f"found {_kind(value)}", column.expected
                )
        matrix = _float_matrix(rows, where)
        return Table(names, len(rows), matrix=matrix)

    # -- columns: {"col": [values...], ...} ----------------------------------------------------

    def from_columns(self, columns: Mapping[str, Any], where: str = "inputs") -> Table:
        """Rows given column-wise: one list or 1-D array per column, all the same length."""
        n_rows: int | None = None
        found: dict[str, Any] = {}
        for column in self.columns:
            if column.name not in columns:
                if column.required:
                    raise InputError(
                        f"{where}.{column.name}", "missing required column", column.expected
                    )
                continue
            values = columns[column.name]
            if isinstance(values, np.ndarray):
                values = values.reshape(-1) if values.ndim > 1 else values
            elif not isinstance(values, list):
                raise InputError(
                    f"{where}.{column.name}", f"found {_kind(values)}", "a list of values"
                )
            if n_rows is None:
                n_rows = len(values)
            elif len(values) != n_rows:
                raise InputError(
                    f"{where}.{column.name}",
                    f"has {len(values)} values while other columns have {n_rows}",
                    "the same number of values in every column",
                )
            found[column.name] = values
        if not n_rows:
            raise InputError(where, "no rows were sent", "at least one row")
        extra = tuple(str(name) for name in columns if name not in self.by_name)
        for column in self.columns:
            if column.name not in found:
                found[column.name] = [None] * n_rows
        if self.all_float and all(
            isinstance(v, np.ndarray) and v.dtype.kind in "fiu" for v in found.values()
        ):
            matrix = np.column_stack([found[name] for name in self.names]).astype(
                np.float64, copy=False
            )
            return Table(self.names, n_rows, matrix=matrix, extra=extra)
        table = self._typed(found, n_rows, lambda name, i: f"{where}.{name}[{i}]")
        return replace(table, extra=extra) if extra else table

    # -- shared type checks --------------------------------------------------------------------

    def _typed(self, columns: dict[str, Any], n_rows: int, at: Any) -> Table:
        out: dict[str, Any] = {}
        for column in self.columns:
            out[column.name] = _check_column(column, columns[column.name], at)
        if self.all_float:
            matrix = np.column_stack([out[name] for name in self.names])
            return Table(self.names, n_rows, matrix=matrix)
        return Table(self.names, n_rows, columns=out)

    def example_table(self) -> Table:
        """One plausible row (zeros, empty strings), to warm a freshly loaded model up."""
        values: dict[str, Any] = {}
        for column in self.columns:
            if column.kind in FLOATS or column.kind in INTEGERS:
                values[column.name] = [0]
            elif column.kind == "boolean":
                values[column.name] = [False]
            elif column.kind == "datetime":
                values[column.name] = ["2024-01-01T00:00:00"]
            else:
                values[column.name] = [""]
        return self.from_columns(values)


_MISSING = object()


def _float_matrix(rows: list[list[Any]], where: str) -> np.ndarray[Any, Any]:
    try:
        return np.array(rows, dtype=np.float64)
    except OverflowError:
        raise InputError(where, "a number is too large", "numbers within float64 range") from None


def _check_column(column: Column, values: Any, at: Any) -> Any:
    """``values`` converted to the column's type, or an InputError at the first bad value."""
    kind = column.kind
    if isinstance(values, np.ndarray):
        dk = values.dtype.kind
        if kind in FLOATS and dk in "fiu":
            return values.astype(_DTYPES[kind], copy=False)
        if kind in INTEGERS and dk in "iu":
            return values.astype(_DTYPES[kind], copy=False)
        if kind == "boolean" and dk == "b":
            return values
        if kind in {"string", "binary", "datetime"} and dk in "OUS":
            values = [
                value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                for value in values.tolist()
            ]
        else:
            values = values.tolist()
    for i, value in enumerate(values):
        if not _fits(kind, value):
            raise InputError(at(column.name, i), f"found {_kind(value)}", column.expected)
    if kind in FLOATS:
        return _float_matrix([values], at(column.name, 0))[0].astype(_DTYPES[kind], copy=False)
    if kind in INTEGERS:
        try:
            return np.array(values, dtype=_DTYPES[kind])
        except OverflowError:
            raise InputError(
                at(column.name, 0), "an integer is out of range", column.expected
            ) from None
    if kind == "boolean":
        return np.array(values, dtype=bool)
    if kind == "datetime":
        try:
            return pd.to_datetime(pd.Series(values), format="ISO8601").to_numpy()
        except (ValueError, TypeError) as exc:
            raise InputError(
                at(column.name, 0), f"not a date-time ({exc})", column.expected
            ) from None
    return np.array(values, dtype=object)


def _fits(kind: str, value: Any) -> bool:
    if kind in FLOATS:
        return value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    if kind in INTEGERS:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return value is None or isinstance(value, str)
    return isinstance(value, str)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
