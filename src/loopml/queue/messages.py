"""The bodies of the task messages, checked before a worker acts on them.

These are the keyword arguments of Celery's message protocol v2; a client in
any language sends exactly these fields (docs/workers.md).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loopml.core.errors import MessageError

JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
M = TypeVar("M", bound=BaseModel)


class TrainingMessage(BaseModel):
    """Run one spec. ``job_id`` is also the run id, so a redelivery resumes the same run."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    spec: str = Field(min_length=1, description="The spec text, JSON or YAML.")
    source: str | None = Field(
        default=None, description="Path of the spec file; relative data paths resolve from it."
    )


class RowRange(BaseModel):
    """Rows ``start`` .. ``start + rows - 1`` of a Parquet file the worker can read itself."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(min_length=1, description="A path on a disk the workers share, or s3://")
    start: int = Field(ge=0)
    rows: int = Field(ge=1)


class BatchMessage(BaseModel):
    """Score ``rows`` (pandas' split layout), or the ``source`` row range, as batch ``batch_id``."""

    model_config = ConfigDict(extra="forbid")

    job_id: str | None = Field(default=None, pattern=JOB_ID_PATTERN)
    batch_id: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, description="name@alias or name/version")
    columns: list[str] = Field(min_length=1)
    rows: list[list[Any]] | None = None
    source: RowRange | None = None

    @model_validator(mode="after")
    def _one_kind_of_rows(self) -> BatchMessage:
        if (self.rows is None) == (self.source is None):
            raise ValueError("send exactly one of rows (the values) or source (a row range)")
        return self


class BatchJobMessage(BaseModel):
    """Score the file ``input`` with ``model`` on engine ``engine`` into ``output`` (a whole job).

    Sent by ``POST /batches``; the worker checks the paths against the batch
    roots again before it reads a row (:mod:`loopml.batch.orders`).
    """

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    model: str = Field(min_length=1, max_length=255, description="name@alias or name/version")
    input: str = Field(min_length=1, max_length=4096)
    output: str = Field(min_length=1, max_length=4096)
    engine: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    batch_rows: int = Field(ge=1)
    by_reference: bool = False


def parse_message(kind: type[M], args: tuple[Any, ...], kwargs: dict[str, Any]) -> M:
    """The message as ``kind``, or a MessageError naming every wrong field."""
    if args:
        raise MessageError(
            f"{kind.__name__}: positional arguments are not accepted (got {len(args)}); "
            f"send keyword arguments {', '.join(kind.model_fields)}"
        )
    try:
        return kind.model_validate(kwargs)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '<body>'}: {error['msg']}"
            for error in exc.errors()
        )
        raise MessageError(f"malformed {kind.__name__}: {problems}") from exc


def job_id_of(kwargs: dict[str, Any]) -> str | None:
    """The job id of a message, when it has a usable one, even if the rest is malformed."""
    import re

    value = kwargs.get("job_id") if isinstance(kwargs, dict) else None
    if isinstance(value, str) and re.match(JOB_ID_PATTERN, value):
        return value
    return None


class TrialMessage(BaseModel):
    """Join the tuning study of job ``job_id`` for ``estimator``; ``ticket`` is the task id.

    Published by the training job itself (``tune.distributed``); a worker runs
    trials of that study until it has ``n_iter``, then acknowledges.
    """

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    estimator: str = Field(pattern=r"^[a-z]{1,16}$", description="The tuned estimator's id.")
    ticket: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$", description="Equals the id header.")

    @model_validator(mode="after")
    def _ticket_of_this_study(self) -> TrialMessage:
        """A ticket is ``JOB-ESTIMATOR-N``: one naming another job's study is not its own."""
        prefix = f"{self.job_id}-{self.estimator}-"
        if not (self.ticket.startswith(prefix) and self.ticket[len(prefix) :].isdigit()):
            raise ValueError(
                f"ticket {self.ticket!r} is not of this study: expected {prefix}N "
                "(the job publishes its own trial tasks)"
            )
        return self
