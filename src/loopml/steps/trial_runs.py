"""Each tuning trial as an MLflow run nested under its model's candidate run.

Trials may have run in other processes (training workers), so they are
logged afterwards from the study's records, which carry everything: the
parameters, the per-fold metrics, the state, the duration and the worker.
"""

from __future__ import annotations

import time
from typing import Any

from loopml.steps.tracking import metric_key

_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


def log_trials(mlflow: Any, parent_run_id: str, report: Any) -> list[str]:
    """One child run per finished trial of ``report`` under ``parent_run_id``; their ids."""
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    now = int(time.time() * 1000)
    ids = []
    for trial in report.trials:
        tags = {
            "mlflow.parentRunId": parent_run_id,
            "loopml.kind": "trial",
            "loopml.estimator_id": report.estimator_id,
            "loopml.trial_number": str(trial.number),
            "loopml.trial_state": trial.state,
            "loopml.tuning_storage": report.storage,
        }
        if trial.host:
            tags["loopml.worker_host"] = trial.host
        if trial.pid is not None:
            tags["loopml.worker_pid"] = str(trial.pid)
        if trial.error:
            tags["loopml.trial_error"] = trial.error[:4000]
        run = client.create_run(
            experiment_id, run_name=f"{report.estimator_id} trial {trial.number}", tags=tags
        )
        metrics = []
        if trial.value is not None:
            metrics.append(Metric(f"cv_{metric_key(report.metric)}_mean", trial.value, now, 0))
        if trial.seconds is not None:
            metrics.append(Metric("trial_time_s", float(trial.seconds), now, 0))
        for metric, values in trial.fold_metrics.items():
            for fold, value in enumerate(values):
                if value == value:
                    metrics.append(Metric(f"cv_{metric_key(metric)}", float(value), now, fold))
        params = [Param(k, str(v)[:6000]) for k, v in trial.params.items()]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, status=_STATUS.get(trial.state, "FINISHED"))
        ids.append(run.info.run_id)
    return ids
