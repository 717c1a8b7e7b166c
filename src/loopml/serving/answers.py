"""What each route of the model server answers, written into its OpenAPI document.

The handlers build raw responses for speed, so FastAPI cannot infer their
status codes, content types or error bodies; this table states them once, and
a fuzzer (schemathesis, with its conformance checks) holds the server to it.
The gate in front of every route adds 401 (API key) and, on POST, 413 (body
size) and 400 (malformed Content-Length).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST

JSON = "application/json"
TEXT = "text/plain"


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STR = {"type": "string"}
GATE_ERROR = _object(["error", "error_code"], error=_STR, error_code=_STR)
INPUT_ERROR = _object(["error", "field", "expected"], error=_STR, field=_STR, expected=_STR)
MLFLOW_ERROR = _object(["error_code", "message"], error_code=_STR, message=_STR)
V2_ERROR = _object(["error"], error=_STR)


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _text(description: str, media: str = TEXT) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": _STR}}}


def _either(description: str, *schemas: dict[str, Any]) -> dict[str, Any]:
    return _json(description, {"anyOf": list(schemas)})


_V2_MODEL = {
    200: _json("The model", {"type": "object"}),
    404: _json("No such model or version here", V2_ERROR),
}
_V2_INFER = {
    200: {
        "description": "Output tensors (JSON, or binary tensor data after a JSON header)",
        "content": {
            JSON: {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    400: _either("Not a valid inference request", V2_ERROR, GATE_ERROR),
    404: _json("No such model or version here", V2_ERROR),
    422: _json("The inputs do not fit the model signature", V2_ERROR),
}

ANSWERS: dict[tuple[str, str], dict[int, dict[str, Any]]] = {
    ("post", "/predict"): {
        200: _json("Predictions", _object(["model", "predictions"], predictions={"type": "array"})),
        400: _json("Malformed Content-Length", GATE_ERROR),
        422: _json("The rows do not fit the model signature", INPUT_ERROR),
    },
    ("post", "/invocations"): {
        200: _json("Predictions (MLflow layout)", {"type": "object"}),
        400: {
            "description": "A request MLflow would refuse",
            "content": {JSON: {"schema": {"anyOf": [MLFLOW_ERROR, GATE_ERROR]}}, TEXT: {}},
        },
        415: _text("Unsupported content type or charset"),
        422: _json("The rows do not fit the model signature", MLFLOW_ERROR),
    },
    ("post", "/feedback"): {
        202: _json("Accepted", _object(["accepted"], accepted={"type": "integer"})),
        400: _json("Malformed Content-Length", GATE_ERROR),
        422: _json("Not feedback", INPUT_ERROR),
    },
    ("get", "/ping"): {200: _text("Alive")},
    ("get", "/health"): {200: _text("Alive")},
    ("get", "/version"): {200: _text("The MLflow version")},
    ("get", "/metadata"): {200: _json("Model, signature, swaps, log", {"type": "object"})},
    ("get", "/metrics"): {200: _text("Prometheus text format", CONTENT_TYPE_LATEST)},
    ("get", "/v2"): {200: _json("Server metadata", {"type": "object"})},
    ("get", "/v2/health/live"): {200: _json("Live", _object(["live"], live={"type": "boolean"}))},
    ("get", "/v2/health/ready"): {
        200: _json("Ready", _object(["ready"], ready={"type": "boolean"}))
    },
    ("get", "/v2/models/{name}"): _V2_MODEL,
    ("get", "/v2/models/{name}/versions/{version}"): _V2_MODEL,
    ("get", "/v2/models/{name}/ready"): _V2_MODEL,
    ("get", "/v2/models/{name}/versions/{version}/ready"): _V2_MODEL,
    ("get", "/v2/models/{name}/config"): _V2_MODEL,
    ("get", "/v2/models/{name}/versions/{version}/config"): _V2_MODEL,
    ("get", "/v2/models/{name}/stats"): _V2_MODEL,
    ("get", "/v2/models/{name}/versions/{version}/stats"): _V2_MODEL,
    ("post", "/v2/models/{name}/infer"): _V2_INFER,
    ("post", "/v2/models/{name}/versions/{version}/infer"): _V2_INFER,
}


def describe_answers(app: FastAPI) -> None:
    """Write :data:`ANSWERS` and the gate's answers into ``app``'s OpenAPI document."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = plain()
            for path, operations in spec["paths"].items():
                for method, operation in operations.items():
                    responses = operation.setdefault("responses", {})
                    if method == "post":
                        responses["413"] = _json("Body over the size limit", GATE_ERROR)
                    responses["401"] = _json("Missing or unknown API key", GATE_ERROR)
                    if path.startswith("/v2/models/{name}"):  # every model route can miss
                        responses["404"] = _V2_MODEL[404]
                    for status, answer in ANSWERS.get((method, path), {}).items():
                        responses[str(status)] = answer
        return plain()

    app.openapi = openapi  # type: ignore[method-assign]
