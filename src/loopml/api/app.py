"""The jobs control plane: submit a spec or a batch scoring order, list jobs, follow one, cancel it.

A thin face over :mod:`loopml.queue.submit` and the jobs table. Every route
but ``/health`` and the review console under ``/ui`` (docs/console.md: its own
login with a key, a signed session cookie and CSRF tokens) needs
``Authorization: Bearer <key>`` (``LOOPML_API_KEYS``);
the Host header must be one the server answers to; bodies are capped
(``LOOPML_API_MAX_BODY_BYTES``). See ``docs/security.md``.

A spec is checked, never run, here: its structure and vocabulary, and that the
data it names is allowed to a spec that came over HTTP (files under
``LOOPML_DATA_ROOTS``, databases named in ``LOOPML_DATA_SOURCES``). No file is
opened and no database contacted in this process; the worker reads the data
under the same rules. A bad spec is answered 422 with every issue at once,
each with its path, and nothing is queued. Specs are shown with their secrets
masked.

A batch order (``POST /batches``) names files, not data: its paths must lie
under ``LOOPML_BATCH_ROOTS`` (:mod:`loopml.batch.orders`; a 403 names the
roots), and a worker runs it through the engine the CLI uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from loopml.api.guard import ControlGate
from loopml.core import http
from loopml.core.access import mask_secrets
from loopml.core.errors import (
    AccessError,
    BrokerError,
    ConfigError,
    JobNotFoundError,
    LoopmlError,
    SpecError,
    StoreError,
)
from loopml.core.settings import Settings, get_settings


class JobRequest(BaseModel):
    """A spec to run on a training worker."""

    spec: str = Field(
        min_length=1,
        description="The spec text: JSON (comments and trailing commas allowed) or YAML.",
    )
    source: str | None = Field(
        default=None,
        description=(
            "Absolute path of the spec file as workers see it; relative data paths resolve "
            "from its folder. Without it, data paths must be absolute."
        ),
    )
    smoke: bool = Field(
        default=False,
        description="Run with the fast smoke profile (2 folds, no tuning); no alias moves.",
    )

    @field_validator("spec", "source")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # no file name holds one, and PostgreSQL text columns cannot store one
        if value is not None and "\0" in value:
            raise ValueError(f"holds a NUL character at offset {value.index(chr(0))}")
        return value


class BatchJobRequest(BaseModel):
    """A file to score with a registered model, on a worker (``POST /batches``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(
        min_length=1, max_length=255, description="NAME@ALIAS or NAME/VERSION, e.g. fraud@champion"
    )
    input: str = Field(
        min_length=1,
        max_length=4096,
        description="Absolute path of a CSV or Parquet file under the batch roots",
    )
    output: str = Field(
        min_length=1,
        max_length=4096,
        description="Absolute path of the scored file (CSV or Parquet) under the batch roots",
    )
    engine: str = Field(
        default="local", min_length=1, max_length=64, description="local, queue, spark or a plugin"
    )
    batch_rows: int = Field(default=10_000, ge=1, le=1_000_000, description="Rows per chunk")
    by_reference: bool = Field(
        default=False, description="engine queue: send Parquet row ranges to the workers, not rows"
    )
    overwrite: bool = Field(
        default=False, description="Replace the output file if it exists (like the CLI's flag)"
    )


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


_GATE_ERROR = _object(
    {"error": {"type": "string"}, "error_code": {"type": "string"}}, ["error", "error_code"]
)
_DETAIL = _object({"detail": {}}, ["detail"])
_JOB = _object(
    {"id": {"type": "string"}, "status": {"type": "string"}, "kind": {"type": "string"}},
    ["id", "status", "kind"],
)


def _response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


GATED: dict[int | str, dict[str, Any]] = {
    400: _response(
        "Host header not allowed, or a body that is not JSON",
        {"anyOf": [_GATE_ERROR, _DETAIL]},
    ),
    401: _response("Missing or unknown API key", _GATE_ERROR),
    413: _response("Request body over LOOPML_API_MAX_BODY_BYTES", _GATE_ERROR),
    422: _response("Invalid request", _DETAIL),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _response("No such job", _DETAIL)}
_BATCH_JOB = {
    **_JOB,
    "properties": {
        **_JOB["properties"],
        "batch": _object(
            {
                "model": {"type": ["string", "null"]},
                "engine": {"type": ["string", "null"]},
                "chunks_done": {"type": "integer"},
                "chunks_total": {"type": ["integer", "null"]},
                "rows_scored": {"type": "integer"},
            },
            ["model", "engine", "chunks_done", "chunks_total", "rows_scored"],
        ),
    },
    "required": [*_JOB["required"], "batch"],
}


def _spec_error(error: SpecError) -> JSONResponse:
    return JSONResponse(
        status_code=422,
        content={
            "detail": {
                "message": str(error),
                "issues": [
                    {
                        "path": issue.path,
                        "message": issue.message,
                        "found": issue.found,
                        "allowed": issue.allowed,
                        "suggestion": issue.suggestion,
                        "text": issue.render(),
                    }
                    for issue in error.issues
                ],
            }
        },
    )


def _shown(job: Any) -> dict[str, Any]:
    """A job as the API shows it: its error with any secret masked."""
    shown: dict[str, Any] = job.as_dict()
    shown["error"] = mask_secrets(shown["error"])
    return shown


def _batch_shown(job: Any, rows_scored: int) -> dict[str, Any]:
    """A batch job as the API shows it: the job, and what it scores, where, and how far it is."""
    details = job.details or {}
    nested = details.get("batch")
    order: dict[str, Any] = nested if isinstance(nested, dict) else details
    return {
        **_shown(job),
        "batch": {
            "model": job.model_name,
            "version": details.get("version"),
            "engine": order.get("engine"),
            "input": order.get("input"),
            "output": order.get("output"),
            "batch_rows": order.get("batch_rows"),
            "chunks_done": job.steps_done,
            "chunks_total": job.steps_total,
            "rows_scored": rows_scored,
        },
    }


def _store_down(request: Request, error: Exception) -> JSONResponse:
    """A 503 when the metadata store cannot be reached: the client may retry, nothing was queued.

    Without it a database outage surfaced as a bare 500. The driver's first
    line is kept (masked: it can hold the store's address and password).
    """
    lines = str(error).strip().splitlines()
    first = mask_secrets(lines[0][:300]) if lines else type(error).__name__
    return JSONResponse(
        status_code=503,
        headers={"Retry-After": "5"},
        content={"detail": f"the metadata store cannot be reached now; try again ({first})"},
    )


def _invalid(request: Request, error: Exception) -> JSONResponse:
    """A 422 naming each wrong field and why, without echoing what was sent.

    FastAPI's own answer repeats every rejected value: a megabyte string comes
    back whole, and a lone surrogate (valid JSON, not encodable as UTF-8) made
    rendering the answer itself fail with a 500.
    """
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    return JSONResponse(
        status_code=422,
        content={
            "detail": [
                {
                    "loc": [str(part) for part in problem.get("loc", ())],
                    "msg": str(problem.get("msg", "")).encode("utf-8", "replace").decode(),
                    "type": str(problem.get("type", "")),
                }
                for problem in problems
            ]
        },
    )


def create_app(
    settings: Settings | None = None,
    *,
    bind_host: str = "127.0.0.1",
    port: int | None = None,
    no_auth: bool = False,
) -> FastAPI:
    """The FastAPI app for ``settings`` (default: the process settings) served at ``bind_host``.

    Without API keys it is refused (ConfigError) unless ``no_auth``; the CLI
    allows that on a loopback address only.
    """
    config = settings or get_settings()
    if not config.api_keys and not no_auth:
        raise ConfigError(
            "the jobs API needs an API key: set LOOPML_API_KEYS=<key>[,<key>...] "
            "(or pass --no-auth on a loopback address for local use)"
        )
    api = FastAPI(title="loopml jobs", version="1")
    api.add_exception_handler(RequestValidationError, _invalid)
    from sqlalchemy.exc import InterfaceError, OperationalError

    for down in (StoreError, OperationalError, InterfaceError):
        api.add_exception_handler(down, _store_down)
    state: dict[str, Any] = {}

    def celery() -> Any:
        if "app" not in state:
            from loopml.queue import make_app

            state["app"] = make_app(config)
        return state["app"]

    def jobs() -> Any:
        if "jobs" not in state:
            from loopml.store.jobs import JobStore

            state["jobs"] = JobStore(config.database)
        return state["jobs"]

    @api.get(
        "/health",
        summary="Liveness; needs no API key",
        responses={400: GATED[400]},
    )
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.post(
        "/jobs",
        status_code=202,
        summary="Check a spec (without reading its data) and queue it",
        responses={
            202: _response("Queued", _JOB),
            **GATED,
            422: _response("Invalid request or spec: every issue, with its path", _DETAIL),
            503: _response("The broker cannot be reached", _DETAIL),
        },
    )
    def submit_job(request: JobRequest) -> Any:
        from loopml.queue.submit import submit_spec_text

        try:
            job = submit_spec_text(
                celery(), config, request.spec, request.source, smoke=request.smoke
            )
        except SpecError as error:
            return _spec_error(error)
        except BrokerError as error:
            raise HTTPException(status_code=503, detail=str(error)) from error
        except StoreError:
            raise  # the store is down, not the request wrong: 503 (_store_down)
        except LoopmlError as error:
            return JSONResponse(status_code=422, content={"detail": str(error)})
        return JSONResponse(status_code=202, content=_shown(job))

    @api.get(
        "/jobs",
        summary="Jobs, newest first",
        responses={200: _response("Jobs", _object({"jobs": {"type": "array"}}, ["jobs"])), **GATED},
    )
    def list_jobs(
        limit: int = Query(default=20, ge=1, le=1000),
        status: str | None = Query(default=None),
    ) -> Any:
        return {"jobs": [_shown(job) for job in jobs().list(limit=limit, status=status)]}

    @api.get(
        "/jobs/{job_id}",
        summary="One job with its spec (secrets masked)",
        responses={200: _response("The job", _JOB), **GATED, **NOT_FOUND},
    )
    def show_job(job_id: str) -> Any:
        try:
            job = jobs().get(job_id)
        except JobNotFoundError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error
        return {**_shown(job), "spec": mask_secrets(job.spec_text)}

    @api.post(
        "/jobs/{job_id}/cancel",
        summary="Cancel a job: a queued one never starts, a running one stops between steps",
        responses={200: _response("The job", _JOB), **GATED, **NOT_FOUND},
    )
    def cancel_job(job_id: str) -> Any:
        try:
            return _shown(jobs().request_cancel(job_id))
        except JobNotFoundError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error

    @api.post(
        "/batches",
        status_code=202,
        summary="Check a batch scoring order (paths under LOOPML_BATCH_ROOTS) and queue it",
        responses={
            202: _response("Queued", _BATCH_JOB),
            **GATED,
            403: _response("A path outside the batch roots", _DETAIL),
            409: _response("The output exists and overwrite is not set", _DETAIL),
            422: _response("Invalid request: model, engine, format or body", _DETAIL),
            503: _response("The broker cannot be reached", _DETAIL),
        },
    )
    def submit_batch(request: BatchJobRequest) -> Any:
        from loopml.batch.orders import check_order
        from loopml.queue.batch_jobs import submit_batch as queue_batch

        try:
            order = check_order(
                config,
                model=request.model,
                input=request.input,
                output=request.output,
                engine=request.engine,
                batch_rows=request.batch_rows,
                by_reference=request.by_reference,
            )
            if not request.overwrite and Path(order.output).exists():
                # as on the command line: a scored file may be the only copy of its results
                return JSONResponse(
                    status_code=409,
                    content={
                        "detail": f'output {request.output} exists; send "overwrite": true '
                        "to replace it, or choose another path"
                    },
                )
            job = queue_batch(celery(), config, order)
        except AccessError as error:
            return JSONResponse(status_code=403, content={"detail": str(error)})
        except BrokerError as error:
            raise HTTPException(status_code=503, detail=str(error)) from error
        except StoreError:
            raise  # the store is down, not the request wrong: 503 (_store_down)
        except LoopmlError as error:
            return JSONResponse(status_code=422, content={"detail": str(error)})
        return JSONResponse(status_code=202, content=_batch_shown(job, 0))

    @api.get(
        "/batches/{job_id}",
        summary="One batch job: status, chunks done of total, rows scored (from the batch log)",
        responses={200: _response("The batch job", _BATCH_JOB), **GATED, **NOT_FOUND},
    )
    def show_batch(job_id: str) -> Any:
        from loopml.store.batchlog import logged_rows
        from loopml.store.jobs import BATCH

        store = jobs()
        try:
            job = store.get(job_id)
        except JobNotFoundError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error
        if job.kind != BATCH:
            raise HTTPException(
                status_code=404, detail=f"job {job.id} is a {job.kind} job, not a batch job"
            )
        return _batch_shown(job, logged_rows(store.engine, job_id=job.id))

    from loopml.api.ui import console_router

    api.include_router(console_router(config, celery))  # the review console, /ui (own login)

    api.add_middleware(
        ControlGate,
        api_keys=config.api_keys,
        hosts=http.allowed_hosts(bind_host, port, config.api_allowed_hosts),
        max_body_bytes=config.api_max_body_bytes,
    )
    return api
