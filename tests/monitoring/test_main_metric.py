"""Decay is judged by the champion's own metric: on rare positives, F1 falls where accuracy cannot.

With 2 % positives a model that stops finding fraud loses under 2 % accuracy
(everything it now misses was rare to begin with) while its F1 collapses.
Judged by accuracy the monitor said ``ok``; judged by the spec's main_metric
it must ask for a retrain, or alert when retraining is off.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.core.settings import Settings
from loopml.monitoring import MonitorPolicy, Reference, WindowSpec, monitor_model
from loopml.monitoring.performance import ConfusionTally
from loopml.monitoring.policy import decay_metric
from loopml.store.monitoring import MonitorStore
from loopml.store.predictions import PredictionLog, PredictionRecord, new_prediction_id
from tests.monitoring.data import START, add_labels

ROWS, POSITIVES = 1000, 20


def _window(seed: int, caught: int, false_alarms: int) -> pd.DataFrame:
    """ROWS rows, POSITIVES of them fraud; the model flags ``caught`` of those and
    ``false_alarms`` others. The features stay put: nothing drifts but the model's hit rate."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x1": rng.normal(0, 1, ROWS), "x2": rng.normal(0, 1, ROWS)})
    truth = np.zeros(ROWS, dtype=int)
    truth[:POSITIVES] = 1
    predicted = np.zeros(ROWS, dtype=int)
    predicted[:caught] = 1
    predicted[POSITIVES : POSITIVES + false_alarms] = 1
    frame["Class"], frame["prediction"] = truth, predicted
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _write(log: PredictionLog, model: str, frame: pd.DataFrame, start: object) -> None:
    records = [
        PredictionRecord(
            id=new_prediction_id(),
            model_name=model,
            model_version="1",
            inputs={"x1": float(row.x1), "x2": float(row.x2)},
            outputs={"prediction": int(row.prediction)},
            created_at=start + timedelta(seconds=i),  # type: ignore[operator]
        )
        for i, row in enumerate(frame.itertuples())
    ]
    log.write(records)
    add_labels(log, [r.id for r in records], frame["Class"])


def _log(settings: Settings, model: str) -> tuple[PredictionLog, pd.DataFrame, pd.DataFrame]:
    log = PredictionLog.open(settings.database)
    good, bad = _window(1, caught=19, false_alarms=1), _window(2, caught=4, false_alarms=2)
    _write(log, model, good, START)
    _write(log, model, bad, START + timedelta(hours=1))
    return log, good, bad


def _figures(frame: pd.DataFrame) -> dict[str, float]:
    tally = ConfusionTally()
    tally.update_labels(frame["Class"], frame["prediction"])
    return tally.metrics()


def test_the_data_is_what_the_issue_describes() -> None:
    good = _figures(_window(1, caught=19, false_alarms=1))
    bad = _figures(_window(2, caught=4, false_alarms=2))
    assert good["f1"] > 0.94 and bad["f1"] < 0.32  # F1 0.95 -> 0.31
    assert (good["accuracy"] - bad["accuracy"]) / good["accuracy"] < 0.05  # under the 5 % drop


def test_main_metric_names_become_monitor_metrics() -> None:
    assert decay_metric("F1") == "f1"
    assert decay_metric("Kappa") == "kappa"
    assert decay_metric("Prec.") == "precision"
    assert decay_metric("RMSE") == "rmse"
    assert decay_metric("F1", classification=False) is None
    assert MonitorPolicy(metric="F1").metric == "f1"
    with pytest.raises(ValueError, match="the monitor computes"):
        MonitorPolicy(metric="Fone")


def test_kappa_and_mcc_match_scikit_learn() -> None:
    from sklearn.metrics import cohen_kappa_score, matthews_corrcoef

    frame = _window(2, caught=4, false_alarms=2)
    figures = _figures(frame)
    assert figures["kappa"] == pytest.approx(cohen_kappa_score(frame["Class"], frame["prediction"]))
    assert figures["mcc"] == pytest.approx(matthews_corrcoef(frame["Class"], frame["prediction"]))


def test_f1_collapse_retrains_where_accuracy_said_ok(settings: Settings) -> None:
    log, good, _ = _log(settings, "fraud_f1")
    reference = Reference.from_frame(good.drop(columns=["prediction"]), target="Class")
    asked: list[str] = []

    def retrain(model_name: str, reason: str) -> str:
        asked.append(reason)
        return "job-1"

    by_accuracy = monitor_model(
        "fraud_f1",
        log_store=log,
        store=MonitorStore(log.engine),
        reference=reference,
        policy=MonitorPolicy(min_rows=100),
        window=WindowSpec(rows=ROWS),
        retrain=retrain,
        resume=False,
    )
    assert by_accuracy.metric == "accuracy"
    assert [o.action for o in by_accuracy.outcomes] == ["", ""]  # what the issue saw: ok
    assert asked == []

    by_f1 = monitor_model(
        "fraud_f1",
        log_store=log,
        store=MonitorStore(log.engine),
        reference=reference,
        policy=MonitorPolicy(min_rows=100, metric=decay_metric("F1")),
        window=WindowSpec(rows=ROWS),
        retrain=retrain,
        resume=False,
    )
    assert by_f1.metric == "f1"
    steady, collapsed = by_f1.outcomes
    assert steady.action == ""
    assert collapsed.action.startswith("retrain requested")
    assert len(asked) == 1 and "performance decay: f1 0.3" in asked[0]


def test_the_default_metric_is_the_champions_main_metric(
    settings: Settings, tmp_path: Path
) -> None:
    """Through the monitor pass the CLI runs: nobody names a metric, F1 is what is judged."""
    from sklearn.linear_model import LogisticRegression

    from loopml.monitoring.policy import MonitorPolicy as Policy
    from loopml.monitoring.service import PassOptions, monitor_pass
    from loopml.registry.models import CHAMPION, register_version, set_alias
    from loopml.registry.tracking import use_tracking

    log, good, _ = _log(settings, "fraud_main_metric")
    training = good.drop(columns=["prediction"])
    mlflow = use_tracking(settings)
    model = LogisticRegression().fit(training[["x1", "x2"]], training["Class"])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model")
    version = register_version(
        settings, info.model_uri, "fraud_main_metric", {"loopml.main_metric": "F1"}
    )
    set_alias(settings, "fraud_main_metric", CHAMPION, version.version)
    data = tmp_path / "train.csv"
    training.to_csv(data, index=False)
    done = monitor_pass(
        settings,
        "fraud_main_metric",
        PassOptions(
            window=WindowSpec(rows=ROWS),
            policy=Policy(min_rows=100),
            reference=data,
            target="Class",
            champion=False,
            retrain=False,
        ),
    )
    assert done.run.metric == "f1"
    steady, collapsed = done.run.outcomes
    assert steady.findings == []
    assert collapsed.action == "alert only: retrain needed but no retrain hook is configured"
    assert any("f1" in finding.message for finding in collapsed.findings)
    decision = MonitorStore(log.engine).checks("fraud_main_metric", kind="decision")
    assert [check.status for check in decision] == ["ok", "alert"]
