"""The jobs control plane: submit a spec, list jobs, follow one, cancel it.

A thin face over :mod:`loopml.queue.submit` and the jobs table. A bad spec is
answered 422 with the same issues ``loopml validate`` prints, each with its
path, so a client can point at the wrong key; nothing is queued for it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from loopml.core.errors import BrokerError, JobNotFoundError, LoopmlError, SpecError
from loopml.core.settings import Settings, get_settings


class JobRequest(BaseModel):
    """A spec to run on a training worker."""

    spec: str = Field(min_length=1, description="The spec text, JSON (lenient) or YAML.")
    source: str | None = Field(
        default=None,
        description="Path of the spec file as workers see it; relative data paths resolve from it.",
    )


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


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app for ``settings`` (default: the process settings)."""
    config = settings or get_settings()
    api = FastAPI(title="loopml jobs", version="1")
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

    @api.post("/jobs", status_code=202)
    def submit_job(request: JobRequest) -> Any:
        from loopml.queue.submit import submit_spec_text

        try:
            job = submit_spec_text(celery(), config, request.spec, request.source)
        except SpecError as error:
            return _spec_error(error)
        except BrokerError as error:
            raise HTTPException(status_code=503, detail=str(error)) from error
        except LoopmlError as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
        return job.as_dict()

    @api.get("/jobs")
    def list_jobs(
        limit: int = Query(default=20, ge=1, le=1000),
        status: str | None = Query(default=None),
    ) -> Any:
        return {"jobs": [job.as_dict() for job in jobs().list(limit=limit, status=status)]}

    @api.get("/jobs/{job_id}")
    def show_job(job_id: str) -> Any:
        try:
            job = jobs().get(job_id)
        except JobNotFoundError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error
        return {**job.as_dict(), "spec": job.spec_text}

    @api.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> Any:
        try:
            return jobs().request_cancel(job_id).as_dict()
        except JobNotFoundError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error

    return api
