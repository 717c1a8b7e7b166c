"""The JSON shapes of ``--output json``: one pydantic model per listing, kept stable.

Scripts read these; docs/cli.md documents each field. Add fields, never
rename or remove them. Every time is ISO 8601 in UTC, every duration seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loopml.core.context import GateDecision as Gate
from loopml.core.status import Status
from loopml.store.jobs import JobView
from loopml.store.runs import RunView


class Shape(BaseModel):
    """Built from the stores' views by attribute (``from_attributes``); a field whose view
    attribute is named differently says so with ``validation_alias``."""

    model_config = ConfigDict(frozen=True, from_attributes=True, populate_by_name=True)


class RunSummary(Shape):
    """One row of ``loopml runs list``."""

    run_id: str = Field(validation_alias="id")
    status: str
    model: str = Field(validation_alias="model_name")
    experiment: str = Field(validation_alias="experiment_name")
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    steps_succeeded: int = 0
    steps_total: int = 0
    executor: str
    host: str

    @classmethod
    def of(cls, run: RunView) -> Self:
        latest = run.latest_steps()
        return cls.model_validate(run).model_copy(
            update={
                "steps_succeeded": sum(1 for s in latest.values() if s.status == Status.SUCCEEDED),
                "steps_total": len(latest),
            }
        )


class StepAttempt(Shape):
    """One attempt of one step of a run."""

    position: int
    step: str = Field(validation_alias="name")
    attempt: int
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    outputs: list[str]
    error: str | None

    @field_validator("outputs", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return list(value) if isinstance(value, dict) else value  # {name: artifact URI}


class RunDetail(RunSummary):
    """``loopml runs show``: the run's provenance, values and every step attempt."""

    spec_source: str | None
    spec_hash: str
    attempts: int
    user: str
    loopml_version: str
    git_commit: str | None
    data_fingerprint: str | None
    mlflow_run_id: str | None
    values: dict[str, Any]
    error: str | None
    steps: list[StepAttempt]
    seed: int | None = None
    smoke: bool = False
    code_hash: str | None = None
    environment_hash: str | None = None

    @field_validator("values", mode="before")
    @classmethod
    def _json_values(cls, value: Any) -> Any:
        return _plain(value) if isinstance(value, dict) else value


class RegisteredRef(Shape):
    """A registry version: the model's name and the version, as the jobs API gives it."""

    name: str
    version: str


class RunResult(Shape):
    """``loopml run`` and ``loopml runs resume``: the run, its grids and what it registered."""

    run: RunDetail
    registered_model: RegisteredRef | None
    reports: dict[str, list[dict[str, Any]]]


class ModelSummary(Shape):
    """One row of ``loopml models list``."""

    model: str
    champion: str | None
    challenger: str | None
    previous: str | None
    aliases: dict[str, str]


class ModelVersion(Shape):
    """One row of ``loopml models list NAME``."""

    model: str
    version: str
    aliases: list[str]
    registered_at: datetime | None
    main_metric: str | None
    main_metric_value: float | None
    gate: str | None
    approval: str | None
    run_id: str | None


class AliasMoveRow(Shape):
    """One recorded alias move."""

    moved_at: datetime
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    run_id: str | None


class ModelHistory(Shape):
    """``loopml models history NAME [--at T] [--alias A]``."""

    model: str
    alias: str | None
    at: datetime | None
    served_version: str | None
    moves: list[AliasMoveRow]


class GateDecision(Shape):
    """What the champion/challenger gate (validate_model) decided in a job's run."""

    decision: str
    reason: str | None
    metric: str | None
    challenger_version: str | None
    challenger_score: float | None
    champion_version: str | None
    champion_score: float | None


class JobSummary(Shape):
    """One row of ``loopml jobs list``."""

    job_id: str = Field(validation_alias="id")
    kind: str
    status: str
    queue: str
    model: str | None = Field(validation_alias="model_name")
    steps_done: int
    steps_total: int | None
    current_step: str | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    worker: str | None

    @classmethod
    def of(cls, job: JobView) -> JobSummary:
        return cls.model_validate(job)


class JobDetail(JobSummary):
    """``loopml jobs show``: a job with its run, what it registered and the gate's decision."""

    spec_source: str | None
    attempts: int
    run_id: str | None
    registered_model: RegisteredRef | None
    gate: GateDecision | None = None
    cancel_requested: bool
    error: str | None
    details: dict[str, Any]

    @classmethod
    def with_gate(cls, job: JobView, gate: Gate | None) -> JobDetail:
        """``job`` with the gate decision of its run (secrets in its error masked)."""
        from loopml.core.access import mask_secrets

        registered = (
            None
            if job.registered_name is None
            else RegisteredRef(name=job.registered_name, version=job.registered_version or "")
        )
        return cls.model_validate(
            {
                **JobSummary.of(job).model_dump(),
                "spec_source": job.spec_source,
                "attempts": job.attempts,
                "run_id": job.run_id,
                "registered_model": registered,
                "gate": None if gate is None else GateDecision.model_validate(gate),
                "cancel_requested": job.cancel_requested,
                "error": mask_secrets(job.error),
                "details": _plain(job.details),
            }
        )


class MonitorWindow(Shape):
    """One window checked by ``loopml monitor``."""

    window: int
    start: datetime
    end: datetime
    rows: int
    complete: bool
    model_version: str | None
    drift_share: float
    drifted: list[str]
    prediction_drift: bool | None
    schema_skew: bool
    metric: str
    performance: dict[str, float]
    estimated: dict[str, float]
    findings: list[str]
    action: str


class MonitorOutput(Shape):
    """``loopml monitor NAME``: the metric judged by, and every window of the pass."""

    model: str
    metric: str
    windows: list[MonitorWindow]
    report: str | None


class BatchOutput(Shape):
    """``loopml predict-batch``: what was scored with which version, and where it went."""

    model: str
    version: str | None
    rows: int
    input: str
    output: str
    job_id: str | None
    engine: str = "local"
    batch_id: str | None = None
    """The batch log's id of this scoring (its segments' job id); the same as ``job_id``."""
    chunks: int = 0
    seconds: float = 0.0
    rows_per_second: float = 0.0
    startup_seconds: float = 0.0
    """Spark: the session start-up, not counted in ``seconds``."""
    log: str | None = None
    """Where the batch-log segments went."""


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Values as JSON can hold them (anything else as its text)."""
    import json

    result: dict[str, Any] = json.loads(json.dumps(values, default=str))
    return result


class ExportOutput(Shape):
    """``loopml export -o json``: what was exported, where, and what was measured."""

    name: str
    version: str
    format: str
    output: str | None
    size_bytes: int
    sha256: str
    artifact_uri: str | None
    one_row_latency_ms: dict[str, float]
    parity: dict[str, Any]
    dropped_steps: list[str]
    inputs: list[dict[str, Any]]


class MetricRow(Shape):
    """One logged metric of ``loopml runs reproduce``: the original's, the new run's, verdict
    (``equal``, ``within_tolerance``, ``different``, ``missing``, ``new``, ``timing``)."""

    name: str
    original: float | None
    reproduced: float | None
    verdict: str


class Change(Shape):
    """A file, distribution or setting that differs: its name, what it was, what it is."""

    name: str
    was: str
    now: str


class ReproductionResult(Shape):
    """``loopml runs reproduce``: the new run, what changed, and every metric compared."""

    original_run_id: str
    run_id: str
    exact: bool
    tolerance: float
    data_source: str
    data_fingerprint: str | None
    seed: int | None
    smoke: bool
    code_changes: list[Change]
    environment_changes: list[Change]
    counts: dict[str, int]
    metrics: list[MetricRow]
    notes: list[str] = []


class VersionScore(Shape):
    """One metric of ``loopml models compare``: both versions' scores and which is better."""

    metric: str
    v1: float | None
    v2: float | None
    better: str
    """``v1``, ``v2`` or ``tie`` (``-`` when a score is missing)."""


class ModelComparison(Shape):
    """``loopml models compare``: both versions scored on the same rows, the gate's reading."""

    model: str
    v1: str
    v2: str
    rows: int
    target: str
    problem_type: str
    main_metric: str
    threshold: float | None
    min_delta: float
    winner: str
    v2_clears_threshold: bool
    gate_would_promote_v2: bool
    reason: str
    metrics: list[VersionScore]


class FeatureViewState(Shape):
    """One feature view in ``loopml features status``: how fresh its online data is."""

    view: str
    materialized_until: datetime | None
    age_s: float | None
    stale: bool


class FeatureStoreStatus(Shape):
    """``loopml features status`` and ``materialize``: the last run and each view's freshness."""

    repo: str
    stale_after_s: float
    last_run: dict[str, Any] | None
    views: list[FeatureViewState]
