"""OpenAPI request bodies built from the model signature, for ``/docs`` and API fuzzers.

The handlers parse raw bytes for speed, so FastAPI cannot infer these; they
are written here once, from the same :class:`InputSchema` the checks use.
"""

from __future__ import annotations

from typing import Any

from loopml.serving.table import FLOATS, INTEGERS, InputSchema

_V2_DATATYPES = ["BOOL", "INT32", "INT64", "FP32", "FP64", "BYTES"]


def _value(kind: str) -> dict[str, Any]:
    if kind in FLOATS:
        return {"type": "number"}
    if kind in INTEGERS:
        return {"type": "integer"}
    if kind == "boolean":
        return {"type": "boolean"}
    return {"type": "string"}


def record_schema(schema: InputSchema) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {column.name: _value(column.kind) for column in schema.columns},
        "required": [column.name for column in schema.columns if column.required],
    }


def _json_body(body: dict[str, Any], example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": body}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def _example(schema: InputSchema) -> dict[str, Any]:
    sample = {"number": 0.0, "integer": 0, "boolean": False, "string": "a"}
    return {c.name: sample[_value(c.kind)["type"]] for c in schema.columns}


def predict_body(schema: InputSchema) -> dict[str, Any]:
    record = record_schema(schema)
    return _json_body(
        {"anyOf": [record, {"type": "array", "items": record, "minItems": 1}]}, [_example(schema)]
    )


def invocations_body(schema: InputSchema) -> dict[str, Any]:
    record = record_schema(schema)
    records = {"type": "array", "items": record, "minItems": 1}
    split = {
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "array"}},
        },
        "required": ["columns", "data"],
    }
    columns = {
        "type": "object",
        "properties": {
            column.name: {"type": "array", "items": _value(column.kind)}
            for column in schema.columns
        },
    }
    body = {
        "anyOf": [
            _one("dataframe_split", split),
            _one("dataframe_records", records),
            _one("instances", records),
            _one("inputs", columns),
        ]
    }
    spec = _json_body(body, {"dataframe_records": [_example(schema)]})
    spec["requestBody"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    return spec


def _one(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: value, "params": {"type": "object"}},
        "required": [key],
        "additionalProperties": False,
    }


def v2_infer_body(schema: InputSchema) -> dict[str, Any]:
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": list(schema.names) or ["x"]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": _V2_DATATYPES},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    output = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": ["predict", "predict_proba", "prediction_id"]},
            "parameters": {"type": "object"},
        },
        "required": ["name"],
    }
    body = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
            "outputs": {"type": "array", "items": output},
        },
        "required": ["inputs"],
    }
    example = {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": c.name, "shape": [1], "datatype": _dt(c.kind), "data": [v]}
            for c, v in zip(schema.columns, _example(schema).values(), strict=True)
        ],
    }
    return _json_body(body, example)


def _dt(kind: str) -> str:
    from loopml.serving.v2 import datatype_of_column

    return datatype_of_column(kind)


def feedback_body() -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {"prediction_id": {"type": "string"}, "label": {}},
        "required": ["prediction_id", "label"],
    }
    return _json_body(
        {"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]},
        {"prediction_id": "0123456789abcdef0123456789abcdef", "label": 1},
    )
