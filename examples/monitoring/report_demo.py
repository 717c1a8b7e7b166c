"""Write a prediction log with drift at a known point, monitor it, and render the HTML report.

    .venv/bin/python examples/monitoring/report_demo.py [--out monitor-report.html]

Six windows of 2,000 predictions of a calibrated classifier: three like the
training data, then income and age drift (covariate shift), and in the last
window the relation between inputs and label flips for part of the rows
(concept drift), which only the feedback labels can reveal.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from loopml.monitoring import (
    Alerter,
    MonitorPolicy,
    Reference,
    WindowSpec,
    monitor_model,
    write_report,
)
from loopml.store.monitoring import MonitorStore
from loopml.store.predictions import PredictionLog, PredictionRecord, new_prediction_id
from loopml.store.tables import Feedback

START = datetime(2026, 11, 1, tzinfo=UTC)


def customers(rows: int, seed: int, *, drift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.lognormal(10.5 + drift * 0.4, 0.5, rows),
            "age": rng.normal(42 + drift * 8, 11, rows).round(),
            "balance": rng.normal(1_000, 400, rows),
            "tenure_months": rng.integers(0, 120, rows),
            "plan": rng.choice(["basic", "plus", "premium"], rows, p=[0.6, 0.3, 0.1]),
            "region": rng.choice(["north", "south", "east", "west"], rows),
        }
    )


def churn_probability(frame: pd.DataFrame) -> np.ndarray:
    score = (
        -1.0
        + 1.5 * (np.log(frame["income"]) - 10.5)
        - 0.03 * (frame["age"] - 42)
        + 0.002 * (frame["balance"] - 1_000)
        + np.where(frame["plan"] == "premium", -0.8, 0.0)
    )
    return np.asarray(1 / (1 + np.exp(-score)))


def write_window(log: PredictionLog, frame: pd.DataFrame, start: datetime, flip: float) -> None:
    rng = np.random.default_rng(int(start.timestamp()))
    p = churn_probability(frame)
    truth = (rng.random(len(frame)) < p).astype(int)
    flipped = rng.random(len(frame)) < flip
    truth[flipped] = 1 - truth[flipped]  # concept drift: the same inputs, another answer
    records = [
        PredictionRecord(
            id=new_prediction_id(),
            model_name="churn",
            model_version="3",
            inputs=row,
            outputs={"prediction": int(q >= 0.5), "probabilities": {"0": 1 - q, "1": q}},
            created_at=start + timedelta(seconds=i),
        )
        for i, (row, q) in enumerate(zip(frame.to_dict(orient="records"), p, strict=True))
    ]
    log.write(records)
    with log.engine.begin() as connection:
        connection.execute(
            sa.insert(Feedback),
            [
                {"prediction_id": r.id, "label": {"label": int(t)}, "created_at": START}
                for r, t in zip(records, truth, strict=True)
            ],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("monitor-report.html"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        log = PredictionLog.open(f"sqlite:///{folder}/loopml.db")
        training = customers(20_000, seed=0)
        training["churned"] = (
            np.random.default_rng(1).random(20_000) < churn_probability(training)
        ).astype(int)
        answers = pd.Series((churn_probability(training) >= 0.5).astype(int))
        for window, (drift, flip) in enumerate(
            [(0, 0), (0, 0), (0, 0), (1, 0), (1.5, 0), (1.5, 0.3)]
        ):
            write_window(
                log,
                customers(2_000, 10 + window, drift=drift),
                START + timedelta(hours=window),
                flip,
            )
        store = MonitorStore(log.engine)
        run = monitor_model(
            "churn",
            log_store=log,
            store=store,
            reference=Reference.from_frame(training, target="churned", prediction=answers),
            policy=MonitorPolicy(critical_features=["income"], cooldown_minutes=60),
            window=WindowSpec(rows=2_000),
            alerter=Alerter(),
            retrain=lambda name, reason: f"demo-job-for-{name}",
        )
        for outcome in run.outcomes:
            print(outcome.result.index, f"{outcome.result.drift_share:.0%}", outcome.action or "ok")
        write_report(args.out, "churn", store.checks("churn"))
    print(f"report: {args.out.resolve()}")


if __name__ == "__main__":
    main()
