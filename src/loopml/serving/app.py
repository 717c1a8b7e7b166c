"""The FastAPI app: three protocols over one model slot, one batcher and one prediction log.

Handlers read raw bodies and answer with orjson bytes: FastAPI's body models
would validate every row twice and cost more than the model itself on a
one-row request. The request bodies are still described in the OpenAPI
schema (built from the model signature), so ``/docs`` and API fuzzers see
what the server accepts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from loopml import __version__
from loopml.core.errors import InputError, JournalError
from loopml.serving import mlflow_protocol, v2
from loopml.serving.answers import describe_answers
from loopml.serving.docs import feedback_body, invocations_body, predict_body, v2_infer_body
from loopml.serving.features import FeatureStoreDownError
from loopml.serving.metrics import GateMiddleware
from loopml.serving.mlflow_protocol import ProtocolError
from loopml.serving.model import ServedModel
from loopml.serving.state import ServingState

JSON = "application/json"


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON, headers=headers)


def _json_body(body: bytes, expected: str) -> Any:
    """The request body as JSON, or the 422 that says it is not JSON and what would be."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError("body", f"not valid JSON ({exc})", expected) from None


def _input_error(error: InputError) -> Response:
    return _json({"error": str(error), "field": error.field, "expected": error.expected}, 422)


def create_app(state: ServingState) -> FastAPI:
    """An app serving ``state``'s model; its lifespan starts and stops the background threads."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            await state.stop()

    model = state.slot.current
    app = FastAPI(
        title=f"loopml serving {model.name}",
        version=__version__,
        description=(
            f"Serves `{state.ref}` (version {model.version} at start; follows the alias). "
            "Protocols: `/predict` (records), `/invocations` (MLflow), `/v2` (Open Inference)."
        ),
        lifespan=lifespan,
    )
    app.state.serving = state
    schema = model.schema

    @app.post(
        "/predict",
        summary="Predict for one record or a list of records",
        openapi_extra=predict_body(schema),
        responses={422: {"description": "The rows do not fit the model signature"}},
    )
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        current = state.slot.current
        body = await request.body()
        try:
            payload = _json_body(body, "a JSON object or a list of objects")
            table = current.schema.from_records(payload)
            outcome = await state.score(current, table, started)
        except InputError as error:
            return _input_error(error)
        keys = current.class_keys
        probabilities = outcome.probability_list
        rows: list[dict[str, Any]] = []
        for i, prediction_id in enumerate(outcome.ids):
            row: dict[str, Any] = {"id": prediction_id, "prediction": outcome.prediction_list[i]}
            if probabilities is not None:
                row["probabilities"] = dict(zip(keys, probabilities[i], strict=True))
            rows.append(row)
        return _json(
            {"model": {"name": current.name, "version": current.version}, "predictions": rows}
        )

    @app.post(
        "/invocations",
        summary="MLflow scoring protocol (as `mlflow models serve`)",
        openapi_extra=invocations_body(schema),
    )
    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        current = state.slot.current
        body = await request.body()
        try:
            table = mlflow_protocol.parse(body, request.headers.get("content-type"), current.schema)
            outcome = await state.score(current, table, started)
        except ProtocolError as error:
            return Response(
                error.body(),
                status_code=error.status,
                media_type="text/plain" if error.plain else JSON,
            )
        except InputError as error:
            message = f"Invalid input. {error}"
            return _json({"error_code": "INVALID_PARAMETER_VALUE", "message": message}, 422)
        return Response(
            mlflow_protocol.response(outcome.prediction_list),
            media_type=JSON,
            headers={"x-model-version": current.version},
        )

    async def ping() -> Response:
        return Response(content="\n", media_type="text/plain")

    app.get("/ping", summary="Health (MLflow)")(ping)
    app.get("/health", summary="Health (MLflow)")(ping)

    @app.get("/version", summary="MLflow version (as `mlflow models serve`)")
    async def version() -> Response:
        from mlflow.version import VERSION

        return Response(content=VERSION, media_type="text/plain")

    @app.get("/metadata", summary="The model serving, its signature, swaps and the prediction log")
    async def metadata() -> Response:
        return _json(state.describe())

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        state.refresh_gauges()
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/feedback",
        summary="Ground truth for earlier predictions, by prediction id",
        status_code=202,
        openapi_extra=feedback_body(),
    )
    async def feedback(request: Request) -> Response:
        body = await request.body()
        try:
            payload = _json_body(body, '{"prediction_id": "...", "label": ...}')
            items = payload if isinstance(payload, list) else [payload]
            if not items:
                raise InputError("body", "no feedback was sent", "at least one item")
            checked = [_feedback_item(item, i) for i, item in enumerate(items)]
        except InputError as error:
            return _input_error(error)
        for prediction_id, label in checked:
            state.feedback(prediction_id, label)
        return _json({"accepted": len(checked)}, 202)

    async def journal_down(request: Request, error: Exception) -> Response:
        return _json({"error": str(error)}, 503, {"Retry-After": "5"})

    app.add_exception_handler(JournalError, journal_down)
    app.add_exception_handler(FeatureStoreDownError, journal_down)  # online features: also a 503
    _v2_routes(app, state)
    _name_the_model_in_openapi(app, model.name)
    describe_answers(app)
    app.add_middleware(
        GateMiddleware,
        metrics=state.metrics,
        api_keys=state.settings.serve_api_keys,
        max_body_bytes=state.settings.serve_max_body_bytes,
    )
    return app


def _name_the_model_in_openapi(app: FastAPI, name: str) -> None:
    """Document that ``{name}`` in the V2 paths can only be the one model served here."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = plain()
            for operations in spec["paths"].values():
                for operation in operations.values():
                    for parameter in operation.get("parameters", []):
                        if parameter["name"] == "name":
                            parameter["schema"]["enum"] = [name]
        return plain()

    app.openapi = openapi  # type: ignore[method-assign]


def _feedback_item(item: Any, i: int) -> tuple[str, Any]:
    if not isinstance(item, dict):
        raise InputError(f"body[{i}]", "not an object", '{"prediction_id": "...", "label": ...}')
    prediction_id = item.get("prediction_id")
    if not isinstance(prediction_id, str) or not 0 < len(prediction_id) <= 36:
        raise InputError(
            f"body[{i}].prediction_id",
            "missing or not a prediction id",
            "the id string a prediction response returned",
        )
    if "label" not in item:
        raise InputError(f"body[{i}].label", "missing", "the true label (any JSON value)")
    return prediction_id, item["label"]


def _v2_routes(app: FastAPI, state: ServingState) -> None:
    def error(message: str, status: int) -> Response:
        return _json({"error": message}, status)

    def served(name: str, version: str | None) -> ServedModel | Response:
        current = state.slot.current
        if name != current.name:
            return error(
                f"model {name!r} is not served here; this server serves {current.name!r}", 404
            )
        if version is not None and version != current.version:
            return error(
                f"version {version} of {name!r} is not loaded; serving version {current.version}",
                404,
            )
        return current

    @app.get("/v2", summary="Server metadata (Open Inference Protocol)")
    async def server_metadata() -> Response:
        return _json(
            {"name": "loopml", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    @app.get("/v2/health/live", summary="Liveness (Open Inference Protocol)")
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", summary="Readiness (Open Inference Protocol)")
    async def ready() -> Response:
        return _json({"ready": True})

    async def model_metadata(name: str, version: str | None = None) -> Response:
        found = served(name, version)
        if isinstance(found, Response):
            return found
        predict_type = "BYTES"
        if found.classes is not None:
            predict_type = v2.datatype_of_values(found.classes)
        elif found.flavor == "sklearn":
            predict_type = "FP64"
        return _json(
            v2.model_metadata(found.name, found.version, found.schema, found.classes, predict_type)
        )

    async def model_ready(name: str, version: str | None = None) -> Response:
        found = served(name, version)
        if isinstance(found, Response):
            return found
        return _json({"name": found.name, "ready": True})

    stats = v2.InferenceStats()

    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        started = time.perf_counter()
        started_ns = time.perf_counter_ns()
        found = served(name, version)
        if isinstance(found, Response):
            return found
        body = await request.body()
        try:
            parsed = v2.parse(body, request.headers.get(v2.HEADER_LENGTH), found.schema)
            if (
                not parsed.every_output
                and "predict_proba" in parsed.outputs
                and found.classes is None
            ):
                raise v2.V2Error(f"model {found.name!r} has no predict_proba (not a classifier)")
            outcome = await state.score(found, parsed.table, started)
        except v2.V2Error as problem:
            stats.record(found.version, started_ns, ok=False)
            return error(problem.message, problem.status)
        except InputError as problem:
            stats.record(found.version, started_ns, ok=False)
            return error(str(problem), 422)
        stats.record(found.version, started_ns, ok=True, rows=len(outcome.ids))
        tensors: dict[str, Any] = {"predict": outcome.predictions}
        if outcome.probabilities is not None:
            tensors["predict_proba"] = np.asarray(outcome.probabilities, dtype=np.float64)
        tensors["prediction_id"] = np.array(outcome.ids, dtype=object)
        content, header_length = v2.response(found.name, found.version, parsed, tensors)
        if header_length is None:
            return Response(content, media_type=JSON)
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(header_length)},
        )

    async def model_config(name: str, version: str | None = None) -> Response:
        found = served(name, version)
        if isinstance(found, Response):
            return found
        described = orjson.loads((await model_metadata(name, version)).body)
        return _json(v2.model_config(described))

    async def model_stats(name: str, version: str | None = None) -> Response:
        found = served(name, version)
        if isinstance(found, Response):
            return found
        return _json(stats.as_dict(found.name, [found.version]))

    app.get("/v2/models/{name}/config", summary="Model configuration (Triton)")(model_config)
    app.get("/v2/models/{name}/versions/{version}/config", summary="Model configuration")(
        model_config
    )
    app.get("/v2/models/{name}/stats", summary="Inference statistics (Triton)")(model_stats)
    app.get("/v2/models/{name}/versions/{version}/stats", summary="Inference statistics")(
        model_stats
    )
    app.get("/v2/models/{name}", summary="Model metadata")(model_metadata)
    app.get("/v2/models/{name}/versions/{version}", summary="Model metadata")(model_metadata)
    app.get("/v2/models/{name}/ready", summary="Model readiness")(model_ready)
    app.get("/v2/models/{name}/versions/{version}/ready", summary="Model readiness")(model_ready)
    body = v2_infer_body(state.slot.current.schema)
    app.post("/v2/models/{name}/infer", summary="Inference", openapi_extra=body)(infer)
    app.post("/v2/models/{name}/versions/{version}/infer", summary="Inference", openapi_extra=body)(
        infer
    )
