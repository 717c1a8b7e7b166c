"""SQLAlchemy tables of the metadata store. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class PipelineRun(Base):
    """One run of a spec: what was asked, where it ran, how it ended."""

    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    spec_text: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    spec_source: Mapped[str | None] = mapped_column(Text)
    experiment_name: Mapped[str] = mapped_column(String(255))
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    executor: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    user: Mapped[str] = mapped_column(String(255))
    loopml_version: Mapped[str] = mapped_column(String(64))
    git_commit: Mapped[str | None] = mapped_column(String(64))
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    mlflow_experiment_id: Mapped[str | None] = mapped_column(String(64))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    smoke: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    code_hash: Mapped[str | None] = mapped_column(String(64))
    environment_hash: Mapped[str | None] = mapped_column(String(64))
    reproducibility: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    steps: Mapped[list[StepRun]] = relationship(
        back_populates="run",
        order_by="(StepRun.position, StepRun.attempt)",
        cascade="all, delete-orphan",
    )


class StepRun(Base):
    """One attempt at one step of a run; a resumed step gets a new attempt row."""

    __tablename__ = "step_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    run: Mapped[PipelineRun] = relationship(back_populates="steps")


class Prediction(Base):
    """One scored row in the prediction log: online (serving) or batch (workers).

    ``inputs`` holds the row as the client sent it (column -> value) and
    ``outputs`` what the model said (``prediction`` and, for classifiers,
    ``probabilities``), so monitoring can rebuild frames without the model.
    """

    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    model_version: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    skew: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Feedback(Base):
    """Ground truth for a prediction, arriving later (``POST /feedback``).

    No foreign key: labels are shipped from the journal like predictions, and
    the writer stores a label only when its prediction is in the log, with that
    prediction's ``model_version`` (migration 0006). ``entry_id`` (the journal
    entry's id, unique) makes a re-shipped label a no-op.
    """

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(String(36), index=True)
    label: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    model_version: Mapped[str | None] = mapped_column(String(32))
    entry_id: Mapped[str | None] = mapped_column(String(32), unique=True, index=True)
