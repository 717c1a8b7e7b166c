"""The HTML report reads like the CLI: natural feature order, readable tails, the same actions."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from loopml.core.settings import Settings
from loopml.monitoring import MonitorPolicy, Reference, WindowSpec, monitor_model, render_report
from loopml.monitoring.report import heavy_tail, natural
from loopml.store.monitoring import MonitorStore
from loopml.store.predictions import PredictionLog, PredictionRecord, new_prediction_id
from tests.monitoring.data import START, add_labels

FEATURES = ["V10", "V2", "Amount", "V1", "V11"]


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(0, 1, rows) for name in FEATURES})
    frame["Amount"] = rng.lognormal(3, 1.6, rows)  # a few huge amounts, most small
    frame["Class"] = (frame["V1"] > 1.5).astype(int)
    return frame


def test_natural_order_and_heavy_tails() -> None:
    assert sorted(["V10", "V2", "Amount", "V1", "V11"], key=natural) == [
        "Amount", "V1", "V2", "V10", "V11",
    ]  # fmt: skip
    rng = np.random.default_rng(0)
    amounts = rng.lognormal(3, 1.6, 20_000)
    density, edges = np.histogram(amounts, bins=40, density=True)
    assert heavy_tail(edges.tolist(), density.tolist()) is not None
    normal, edges = np.histogram(rng.normal(0, 1, 20_000), bins=40, density=True)
    assert heavy_tail(edges.tolist(), normal.tolist()) is None


def test_report_orders_features_naturally_and_shows_the_cli_action(settings: Settings) -> None:
    log = PredictionLog.open(settings.database)
    window = _frame(400, seed=1)
    records = [
        PredictionRecord(
            id=new_prediction_id(),
            model_name="report_model",
            model_version="1",
            inputs={name: float(row[name]) for name in FEATURES},
            outputs={"prediction": int(row["Class"])},
            created_at=START + timedelta(seconds=i),
        )
        for i, row in enumerate(window.to_dict(orient="records"))
    ]
    log.write(records)
    add_labels(log, [r.id for r in records], window["Class"])
    run = monitor_model(
        "report_model",
        log_store=log,
        store=MonitorStore(log.engine),
        reference=Reference.from_frame(_frame(3_000, seed=0), target="Class"),
        policy=MonitorPolicy(min_rows=100, metric="F1"),
        window=WindowSpec(rows=400),
    )
    assert [outcome.action for outcome in run.outcomes] == [""]  # the CLI prints "ok"
    html = render_report("report_model", MonitorStore(log.engine).checks("report_model"))
    positions = [html.index(f'id="window-0-{name}"') for name in ("Amount", "V1", "V2", "V10")]
    assert positions == sorted(positions)
    assert html.index('id="window-0-V10"') < html.index('id="window-0-V11"')
    overview = html[html.index('<section id="overview">') : html.index('<section id="window-0"')]
    assert "<td>ok</td>" in overview  # the action the CLI shows, not a dash
    assert "<th>f1</th>" in overview and "<th>estimated f1</th>" in overview
