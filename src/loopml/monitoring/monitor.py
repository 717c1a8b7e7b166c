"""Run the checks over windows of the prediction log, store them, alert, and maybe retrain.

``monitor_model`` is the one entry point: the ``loopml monitor`` command and a
scheduled worker task both call it. It walks the log in bounded chunks, so
the window size is limited by nothing but time.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from loopml.core.errors import ConfigError
from loopml.monitoring.alerts import Alert, Alerter
from loopml.monitoring.policy import (
    DATA_DRIFT,
    ESTIMATED,
    PERFORMANCE,
    PREDICTION_DRIFT,
    SCHEMA_SKEW,
    Finding,
    MonitorPolicy,
    judge,
)
from loopml.monitoring.reference import BINARY, CATEGORICAL, Reference
from loopml.monitoring.window import WindowResult, WindowTally
from loopml.store.monitoring import ALERT, OK, CheckView, MonitorStore
from loopml.store.predictions import PredictionLog

log = logging.getLogger("loopml.monitoring")

Retrain = Callable[[str, str], str | None]
"""``retrain(model_name, reason)`` queues the spec that produced the champion; returns a job id."""

DECISION = "decision"
_PERIOD = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class WindowSpec:
    """A window is a number of rows or a span of time."""

    rows: int | None = None
    period: timedelta | None = None

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        """``"10000"`` (rows) or ``"30m"``, ``"6h"``, ``"1d"``, ``"1w"`` (time)."""
        value = text.strip().lower()
        if value.isdigit() and int(value) > 0:
            return cls(rows=int(value))
        match = _PERIOD.match(value)
        if match and int(match.group(1)) > 0:
            return cls(period=timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}))
        raise ConfigError(
            f"--window {text!r}: expected a row count like 10000 or a span like 30m, 6h, 1d, 1w"
        )


@dataclass
class WindowOutcome:
    """A window's results, what they call for, and what was done about it."""

    result: WindowResult
    findings: list[Finding]
    alert_sent: bool | None = None
    action: str = ""


@dataclass
class MonitorRun:
    """One pass of the monitor over a model's prediction log."""

    id: str
    model_name: str
    outcomes: list[WindowOutcome] = field(default_factory=list)
    metric: str = ""
    """The metric performance decay is judged by (the policy's, or its default)."""

    @property
    def retrains_requested(self) -> int:
        return sum(outcome.action.startswith("retrain requested") for outcome in self.outcomes)


def monitor_model(
    model_name: str,
    *,
    log_store: PredictionLog,
    store: MonitorStore,
    reference: Reference,
    policy: MonitorPolicy,
    window: WindowSpec,
    alerter: Alerter | None = None,
    retrain: Retrain | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    resume: bool = True,
    classification: bool | None = None,
    chunk_rows: int = 20_000,
    on_window: Callable[[WindowOutcome], None] | None = None,
) -> MonitorRun:
    """Check every window of ``model_name``'s prediction log against ``reference``.

    With ``resume`` (the scheduled case) it starts after the newest complete
    window already stored, so each window is checked once. ``retrain`` is
    called at most once per model per cool-down, never while one is in flight.
    """
    alerter = alerter or Alerter()
    first_index = 0
    if since is None and resume:
        since = store.last_complete_window_end(model_name)
        first_index = store.complete_windows(model_name)
    chunks = log_store.frames(
        model_name, since=since, until=until, chunk_rows=chunk_rows, with_feedback=True
    )
    first = next(chunks, None)
    if first is not None:
        chunks = itertools.chain([first], chunks)
    if classification is None:
        classification = _is_classification(reference, first)
    run = MonitorRun(uuid.uuid4().hex, model_name, metric=policy.metric_for(classification))
    baseline = dict(policy.baseline) or _stored_baseline(store, model_name)
    for tally, complete, bounds in _windows(chunks, reference, window, since, classification):
        index = first_index + len(run.outcomes)
        result = tally.result(index, complete=complete, thresholds=_thresholds(policy))
        if bounds is not None:
            result.start, result.end = bounds
        else:
            result.end = result.end + timedelta(microseconds=1)  # exclusive, for resuming
        baseline = baseline or _first_metrics(result)
        findings = judge(result, policy, classification=classification, baseline=baseline)
        outcome = WindowOutcome(result, findings)
        if findings:
            outcome.action = _act(model_name, outcome, store, policy, retrain)
            outcome.alert_sent = alerter.send(_alert(model_name, outcome))
        store.add_checks(_checks(run.id, model_name, outcome, baseline, policy, run.metric))
        run.outcomes.append(outcome)
        if on_window is not None:
            on_window(outcome)
    return run


def _is_classification(reference: Reference, first: pd.DataFrame | None) -> bool:
    """Classes or numbers: from the reference predictions, else from the log's first rows."""
    if reference.prediction is not None:
        return reference.prediction.kind in (BINARY, CATEGORICAL)
    if first is None or "prediction" not in first.columns:
        return True
    if "probabilities" in first.columns and first["probabilities"].notna().any():
        return True
    values = pd.to_numeric(first["prediction"], errors="coerce").dropna()
    return values.empty or bool((values == values.round()).all())


def _thresholds(policy: MonitorPolicy) -> dict[str, float]:
    return dict(policy.feature_thresholds)


def _windows(
    chunks: Iterator[pd.DataFrame],
    reference: Reference,
    spec: WindowSpec,
    since: datetime | None,
    classification: bool,
) -> Iterator[tuple[WindowTally, bool, tuple[datetime, datetime] | None]]:
    """Cut the stream of chunks into windows.

    Yields each window's tally, whether it is complete, and for time windows
    its bounds (row windows span from their first row to their last).
    """
    current = WindowTally(reference, classification=classification)
    boundary: datetime | None = None
    for chunk in chunks:
        rest = chunk
        while not rest.empty:
            if spec.rows is not None:
                room = spec.rows - current.rows
                head, rest = rest.iloc[:room], rest.iloc[room:]
                current.update(head)
                if current.rows >= spec.rows:
                    yield current, True, None
                    current = WindowTally(reference, classification=classification)
                continue
            assert spec.period is not None
            times = pd.to_datetime(rest["created_at"], utc=True)
            if boundary is None:
                start = since or times.iloc[0].to_pydatetime()
                boundary = start + spec.period
            inside = (times < boundary).to_numpy()
            if inside.any():
                current.update(rest[inside])
            if inside.all():
                rest = rest.iloc[:0]
                continue
            rest, first_left = rest[~inside], times[~inside].min()
            if current.rows:
                yield current, True, (boundary - spec.period, boundary)
                current = WindowTally(reference, classification=classification)
            while first_left >= boundary:  # windows without rows are skipped
                boundary += spec.period
    if current.rows:
        if boundary is None or spec.period is None:
            yield current, False, None
        else:
            complete = boundary <= datetime.now(UTC)
            yield current, complete, (boundary - spec.period, boundary)


def _stored_baseline(store: MonitorStore, model_name: str) -> dict[str, float]:
    for check in store.checks(model_name, kind=PERFORMANCE):
        metrics = {k: v for k, v in check.figures.items() if isinstance(v, int | float)}
        if metrics:
            return metrics
    return {}


def _first_metrics(result: WindowResult) -> dict[str, float]:
    return dict(result.performance) or dict(result.estimated)


def _act(
    model_name: str,
    outcome: WindowOutcome,
    store: MonitorStore,
    policy: MonitorPolicy,
    retrain: Retrain | None,
) -> str:
    findings = outcome.findings
    if any(f.kind == SCHEMA_SKEW for f in findings):
        return "alert only: schema skew needs a person, no retrain"
    wanted = [f for f in findings if f.retrain]
    if not wanted:
        return "alert only"
    if retrain is None:
        return "alert only: retrain needed but no retrain hook is configured"
    reason = f"window {outcome.result.index}: " + "; ".join(f.message for f in wanted)
    claim = store.claim_retrain(
        model_name, reason, cooldown=policy.cooldown, stale_after=policy.stale_after
    )
    if not claim.granted or claim.request_id is None:
        return f"no retrain: {claim.blocked_by}"
    try:
        job = retrain(model_name, reason)
    except Exception as exc:  # the hook is someone else's code: record, free the slot, go on
        log.exception("retrain hook failed for %s", model_name)
        store.finish_retrain(claim.request_id, error=f"{type(exc).__name__}: {exc}")
        return f"retrain failed to start: {type(exc).__name__}: {exc}"
    store.record_job(claim.request_id, job)
    return f"retrain requested ({claim.request_id}" + (f", job {job})" if job else ")")


def _alert(model_name: str, outcome: WindowOutcome) -> Alert:
    result = outcome.result
    return Alert(
        model_name=model_name,
        model_version=result.model_version,
        window_index=result.index,
        window_start=result.start.isoformat(),
        window_end=result.end.isoformat(),
        kinds=[f.kind for f in outcome.findings],
        messages=[f.message for f in outcome.findings],
        action=outcome.action,
    )


def _checks(
    run_id: str,
    model_name: str,
    outcome: WindowOutcome,
    baseline: dict[str, float],
    policy: MonitorPolicy,
    metric: str,
) -> list[CheckView]:
    result = outcome.result
    flagged = {f.kind for f in outcome.findings}
    now = datetime.now(UTC)

    def check(kind: str, figures: dict[str, object]) -> CheckView:
        return CheckView(
            monitor_run_id=run_id,
            model_name=model_name,
            model_version=result.model_version,
            kind=kind,
            status=ALERT if kind in flagged else OK,
            window_index=result.index,
            window_start=result.start,
            window_end=result.end,
            rows=result.rows,
            complete=result.complete,
            figures=_json_safe(figures),
            created_at=now,
        )

    checks = [
        check(
            DATA_DRIFT,
            {
                "share": result.drift_share,
                "share_threshold": policy.drift_share,
                "drifted": result.drifted,
                "columns": [column.as_dict() for column in result.drift],
                "plots": {k: v for k, v in result.plots.items() if k != "prediction"},
            },
        ),
        check(SCHEMA_SKEW, result.schema.as_dict()),
    ]
    if result.prediction_drift is not None:
        checks.append(
            check(
                PREDICTION_DRIFT,
                {**result.prediction_drift.as_dict(), "plot": result.plots.get("prediction")},
            )
        )
    if result.performance:
        checks.append(check(PERFORMANCE, dict(result.performance)))
    if result.estimated:
        checks.append(check(ESTIMATED, dict(result.estimated)))
    checks.append(
        check(
            DECISION,
            {
                "findings": [f.message for f in outcome.findings],
                "kinds": sorted(flagged),
                "action": outcome.action,
                "alert_sent": outcome.alert_sent,
                "baseline": baseline,
                "metric": metric,
            },
        )
    )
    if outcome.findings:
        checks[-1] = CheckView(**{**checks[-1].__dict__, "status": ALERT})
    return checks


def _json_safe(value: Any) -> Any:
    """NaN and infinity are not JSON (PostgreSQL refuses them): store them as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
