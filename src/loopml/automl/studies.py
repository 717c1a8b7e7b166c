"""Running a study to ``n_iter`` trials wherever its storage lives, and reading it back.

Every process that works on a study (the job, threads beside it, training
workers) runs the same loop: start a trial only while finished plus running
trials are fewer than ``n_iter``. So the study ends with ``n_iter`` finished
trials (with a :class:`Gate`, as distributed studies have; without one, plus
at most one per process that checked at the same moment); a trial whose
process died is failed by the heartbeat check and retried, and does not
count. The job's own loop also waits for trials others are running, so a job
alone on one worker still finishes its study.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from loopml.automl.trials import Dimension, Plan

#: Finished trials that count toward n_iter; a FAIL (lost process, retried) does not.
COUNTED = ("COMPLETE", "PRUNED")
CLOSED = "loopml.closed"


@dataclass
class TrialRecord:
    """One trial as tracked: parameters, score, per-fold metrics, who ran it and for how long."""

    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    fold_metrics: dict[str, list[float]]
    seconds: float | None
    host: str | None
    pid: int | None
    error: str | None = None


@dataclass
class TuningReport:
    """The trials of one tuned estimator and the plots of its study, for the candidate's run."""

    estimator_id: str
    metric: str
    n_iter: int
    storage: str
    trials: list[TrialRecord]
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def completed(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "COMPLETE"]


def counts(study: Any) -> tuple[int, int]:
    """(finished trials that count toward n_iter, trials running now)."""
    from optuna.trial import TrialState

    trials = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    )
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    return len(trials) - running, running


def closed(study: Any) -> bool:
    return bool(study.user_attrs.get(CLOSED))


class Gate(Protocol):
    """A lock every process working on one study shares (:func:`work`)."""

    def acquire(self) -> None: ...

    def release(self) -> None:
        """Release if held (called twice per trial: once in the objective, once after)."""


def work(
    study: Any,
    func: Callable[[Any], float],
    n_iter: int,
    after: Callable[[], None],
    gate: Gate | None = None,
) -> int:
    """Run trials one at a time while the study needs more; how many this process ran.

    With ``gate``, counting the study's trials and creating the next one happen
    under it (the objective releases it first thing, once Optuna has recorded
    the trial as running), so processes that check at the same moment never
    take the study past ``n_iter``.
    """
    ran = 0
    objective = func if gate is None else _releasing(func, gate)
    while True:
        if gate is not None:
            gate.acquire()
        try:
            done, running = counts(study)
            if done + running >= n_iter or closed(study):
                return ran
            study.optimize(objective, n_trials=1, gc_after_trial=False)
        finally:
            if gate is not None:
                gate.release()
        ran += 1
        after()


def _releasing(func: Callable[[Any], float], gate: Gate) -> Callable[[Any], float]:
    def run(trial: Any) -> float:
        gate.release()  # the trial is recorded RUNNING: others count it from now on
        return func(trial)

    return run


def work_and_wait(
    study: Any,
    func: Callable[[Any], float],
    n_iter: int,
    after: Callable[[], None],
    poll_s: float = 0.5,
    gate: Gate | None = None,
) -> None:
    """:func:`work`, then wait for trials others run until ``n_iter`` are finished.

    While waiting, stale trials (a process that stopped beating) are failed,
    which retries them as new waiting trials; this loop then runs them itself.
    """
    from optuna.storages import fail_stale_trials

    while True:
        work(study, func, n_iter, after, gate)
        done, _ = counts(study)
        if done >= n_iter:
            return
        time.sleep(poll_s)
        fail_stale_trials(study)  # a no-op without heartbeats
        after()


def records(study: Any) -> list[TrialRecord]:
    """Every finished trial of ``study``, in order (running and waiting ones left out)."""
    from optuna.trial import TrialState

    found = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.RUNNING, TrialState.WAITING):
            continue
        attrs = trial.user_attrs
        found.append(
            TrialRecord(
                number=trial.number,
                state=trial.state.name,
                params=dict(trial.params),
                value=None if trial.value is None else float(trial.value),
                fold_metrics=dict(attrs.get("fold_metrics") or {}),
                seconds=attrs.get("seconds"),
                host=attrs.get("host"),
                pid=attrs.get("pid"),
                error=attrs.get("error"),
            )
        )
    return found


def best(found: list[TrialRecord], plan: Plan) -> TrialRecord | None:
    from loopml.automl.metrics import sort_key

    scored = [t for t in found if t.state == "COMPLETE" and t.value is not None]
    if not scored:
        return None
    key = sort_key(plan.metric)
    return min(scored, key=lambda t: (key(t.value), t.number))


def figures(study: Any, notes: list[str]) -> dict[str, Any]:
    """Optuna's optimization history and parameter importances, as matplotlib figures.

    Importances need two completed trials with varied parameters; when they
    cannot be computed, why goes to ``notes`` and the other plot is kept.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization import matplotlib as plots

    found: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        for name, draw in (
            ("optimization_history", plots.plot_optimization_history),
            ("param_importances", plots.plot_param_importances),
        ):
            try:
                axes = draw(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as error:
                notes.append(f"no {name} plot: {error}")
                continue
            figure: Any = axes.figure
            figure.set_size_inches(8, 5)
            pyplot.close(figure)  # pyplot keeps every figure it drew until closed; it still saves
            found[name] = figure
    return found


def distributions(space: dict[str, Dimension]) -> dict[str, Any]:
    """Optuna distributions of ``space`` (to rebuild a study from trials run elsewhere)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    found: dict[str, Any] = {}
    for name, dimension in space.items():
        if dimension[0] == "int":
            found[name] = IntDistribution(dimension[1], dimension[2], log=dimension[3])
        elif dimension[0] == "float":
            found[name] = FloatDistribution(dimension[1], dimension[2], log=dimension[3])
        else:
            found[name] = CategoricalDistribution(dimension[1])
    return found
