"""MLflow's scoring protocol (``/invocations``), as ``mlflow models serve`` speaks it.

Request formats ``dataframe_split``, ``dataframe_records``, ``instances`` and
``inputs`` (with optional ``params``), as JSON, CSV or Parquet; responses
``{"predictions": [...]}``; errors ``{"error_code": ..., "message": ...}`` with
MLflow's codes, so an MLflow client switches servers without a change. The
rows then go through the same signature check as every other protocol.
"""

from __future__ import annotations

import io
from typing import Any

import orjson

from loopml.core.errors import InputError, LoopmlError
from loopml.serving.table import InputSchema, Table

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CONTENT_TYPES = ("text/csv", "application/json", "application/vnd.apache.parquet")
REQUIRED_INPUT_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
)
BAD_REQUEST, INVALID_PARAMETER_VALUE = "BAD_REQUEST", "INVALID_PARAMETER_VALUE"


class ProtocolError(LoopmlError):
    """A request MLflow itself would refuse: HTTP status, MLflow error code, message."""

    exit_code = 2

    def __init__(self, status: int, error_code: str, message: str, plain: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.plain = plain  # MLflow answers content-type problems in text/plain

    def body(self) -> bytes:
        if self.plain:
            return self.message.encode()
        return orjson.dumps({"error_code": self.error_code, "message": self.message})


def parse(body: bytes, content_type: str | None, schema: InputSchema) -> Table:
    """The rows of an ``/invocations`` request, checked against ``schema``."""
    mime, _params = _content_type(content_type)
    if mime == "application/json":
        return _parse_json(body, schema)
    if mime == "text/csv":
        return _parse_frame(body, schema, csv=True)
    if mime == "application/vnd.apache.parquet":
        return _parse_frame(body, schema, csv=False)
    raise ProtocolError(
        415,
        BAD_REQUEST,
        "This predictor only supports the following content types: "
        f"Types: {list(CONTENT_TYPES)}. Got '{content_type}'.",
        plain=True,
    )


def _content_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    parts = [part.strip() for part in (content_type or "").split(";")]
    params = {key.lower(): value for key, _, value in (p.partition("=") for p in parts[1:] if p)}
    if params.get("charset", "utf-8").lower() != "utf-8":
        raise ProtocolError(415, BAD_REQUEST, "The scoring server only supports UTF-8", plain=True)
    unexpected = set(params) - {"charset"}
    if unexpected:
        raise ProtocolError(
            415,
            BAD_REQUEST,
            f"Unrecognized content type parameters: {', '.join(sorted(unexpected))}.",
            plain=True,
        )
    return parts[0].lower(), params


def _parse_json(body: bytes, schema: InputSchema) -> Table:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(
            400,
            INVALID_PARAMETER_VALUE,
            f"Invalid input. Ensure that input is a valid JSON formatted string. Error: '{exc}'",
        ) from None
    if not isinstance(payload, dict):
        found = "a list" if isinstance(payload, list) else f"'{type(payload).__name__}'"
        raise ProtocolError(
            400,
            INVALID_PARAMETER_VALUE,
            f"Invalid input. {REQUIRED_INPUT_FORMAT}. Received {found}.",
        )
    keys = [key for key in payload if key in FORMATS]
    if len(keys) != 1:
        raise ProtocolError(
            400,
            BAD_REQUEST,
            f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {list(payload)}.",
        )
    key = keys[0]
    data = payload[key]
    if key == "dataframe_split":
        return _split(data, schema)
    if key == "dataframe_records":
        return schema.from_records(data, where=key)
    if isinstance(data, dict):
        return schema.from_columns(data, where=key)
    if isinstance(data, list) and data and all(isinstance(row, list) for row in data):
        return _positional(data, schema, key)
    return schema.from_records(data, where=key)


def _split(data: Any, schema: InputSchema) -> Table:
    where = "dataframe_split"
    if not isinstance(data, dict):
        raise InputError(where, "not an object", '{"columns": [...], "data": [[...], ...]}')
    rows = data.get("data")
    if not isinstance(rows, list):
        raise InputError(f"{where}.data", "missing or not a list", "a list of rows (lists)")
    columns = data.get("columns")
    if columns is None:
        return _positional(rows, schema, f"{where}.data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(f"{where}.columns", "not a list of column names", "a list of strings")
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InputError(
                f"{where}.data[{i}]",
                "not a list of one value per column",
                f"a list of {len(columns)} values",
            )
        records.append(dict(zip(columns, row, strict=True)))
    return schema.from_records(records, where=f"{where}.data")


def _positional(rows: list[Any], schema: InputSchema, where: str) -> Table:
    width = len(schema.names)
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise InputError(
                f"{where}[{i}]",
                "a row without column names must list every column in signature order",
                f"{width} values for {', '.join(schema.names[:5])}"
                + (", ..." if width > 5 else ""),
            )
        records.append(dict(zip(schema.names, row, strict=True)))
    return schema.from_records(records, where=where)


def _parse_frame(body: bytes, schema: InputSchema, *, csv: bool) -> Table:
    import pandas as pd

    try:
        if csv:
            text = body.decode("utf-8")
            strings = {c.name: str for c in schema.columns if c.kind == "string"}
            frame = pd.read_csv(io.StringIO(text), dtype=strings)
        else:
            frame = pd.read_parquet(io.BytesIO(body))
    except Exception as exc:  # any parser failure is the body's fault
        kind = "a valid CSV-formatted" if csv else "a valid Parquet"
        method = "to_csv" if csv else "to_parquet"
        raise ProtocolError(
            400,
            BAD_REQUEST,
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is "
            f"{kind} Pandas DataFrame produced using the `pandas.DataFrame.{method}()` "
            f"method. Error: '{exc}'",
        ) from None
    columns = {str(name): frame[name].to_numpy() for name in frame.columns}
    for column in schema.columns:  # an empty cell is a null, as in JSON, not a float NaN
        values = columns.get(column.name)
        if column.kind == "string" and values is not None:
            values = values.astype(object)
            values[pd.isna(values)] = None
            columns[column.name] = values
    return schema.from_columns(columns, where="csv" if csv else "parquet")


def response(predictions: list[Any]) -> bytes:
    return orjson.dumps({"predictions": predictions})
