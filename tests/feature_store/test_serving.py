"""Serving a version trained from Feast: entity-only requests on all three protocols."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from loopml.core.settings import Settings
from tests.feature_store.conftest import Trained, materialize_all
from tests.serving.conftest import LiveServer, live_server, wait_for

pytestmark = pytest.mark.feast

CUSTOMERS = [1001, 1002, 1003, 1010, 1020]
AMOUNTS = [12.5, 300.0, 45.0, 999.0, 7.25]


@pytest.fixture(scope="module")
def server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    materialize_all(trained.repo)
    settings = trained.settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path_factory.mktemp('fs-serve') / 'log.db'}"}
    )
    with live_server(settings, f"{trained.name}@champion") as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _latest(trained: Trained) -> pd.DataFrame:
    """Each customer's newest stats row, read straight from the Parquet file."""
    stats = pd.read_parquet(trained.repo.stats)
    return (
        stats.sort_values("event_timestamp").groupby("customer_id").tail(1).set_index("customer_id")
    )


def _manual(trained: Trained, customers: list[int], amounts: list[float]) -> Any:
    """The rows joined by hand, in the model's column order, scored by the MLflow model."""
    import mlflow

    from loopml.registry.tracking import use_tracking

    use_tracking(trained.settings)
    model = mlflow.sklearn.load_model(f"models:/{trained.name}/1")
    info = mlflow.models.get_model_info(f"models:/{trained.name}/1")
    names = [spec.name for spec in info.signature.inputs.inputs]
    latest = _latest(trained)
    frame = latest.loc[customers].reset_index(drop=True).assign(amount=amounts)
    frame = frame[names]
    return frame, model.predict_proba(frame)[:, 1], model.predict(frame)


def test_entity_only_requests_score_like_the_manually_joined_rows(
    trained: Trained, server: LiveServer, client: httpx.Client
) -> None:
    frame, expected, labels = _manual(trained, CUSTOMERS, AMOUNTS)
    records = [{"customer_id": c, "amount": a} for c, a in zip(CUSTOMERS, AMOUNTS, strict=True)]

    predict = client.post("/predict", json=records)
    assert predict.status_code == 200, predict.text
    got = [row["probabilities"]["1"] for row in predict.json()["predictions"]]
    np.testing.assert_allclose(got, expected, rtol=1e-9)

    invocations = client.post("/invocations", json={"dataframe_records": records})
    assert invocations.status_code == 200, invocations.text
    assert invocations.json()["predictions"] == labels.tolist()

    v2 = client.post(
        f"/v2/models/{trained.name}/infer",
        json={
            "inputs": [
                {"name": "customer_id", "shape": [5], "datatype": "INT64", "data": CUSTOMERS},
                {"name": "amount", "shape": [5], "datatype": "FP64", "data": AMOUNTS},
            ],
            "outputs": [{"name": "predict_proba"}],
        },
    )
    assert v2.status_code == 200, v2.text
    proba = np.asarray(v2.json()["outputs"][0]["data"]).reshape(5, -1)[:, 1]
    np.testing.assert_allclose(proba, expected, rtol=1e-9)

    # the journal holds the joined rows, with the entity keys
    from loopml.store.predictions import PredictionLog

    state = server.app.state.serving
    log = PredictionLog.open(state.settings.database)
    ids = [row["id"] for row in predict.json()["predictions"]]
    wait_for(lambda: all(log.exists(i) for i in ids))
    logged = pd.concat(list(log.frames(trained.name))).set_index("prediction_id").loc[ids]
    assert logged["customer_id"].tolist() == CUSTOMERS
    for column in frame.columns:
        np.testing.assert_allclose(logged[column].to_numpy(float), frame[column].to_numpy(float))


def test_a_missing_entity_is_a_422_naming_it_on_every_protocol(
    trained: Trained, client: httpx.Client
) -> None:
    rows = [{"customer_id": 1001, "amount": 1.0}, {"customer_id": 424242, "amount": 2.0}]
    answers = [
        client.post("/predict", json=rows),
        client.post("/invocations", json={"dataframe_records": rows}),
        client.post(
            f"/v2/models/{trained.name}/infer",
            json={
                "inputs": [
                    {
                        "name": "customer_id",
                        "shape": [2],
                        "datatype": "INT64",
                        "data": [1001, 424242],
                    },
                    {"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
                ]
            },
        ),
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert "customer_id=424242" in answer.text
        assert "online store" in answer.text
    missing_key = client.post("/predict", json={"amount": 1.0})
    assert missing_key.status_code == 422 and "customer_id" in missing_key.json()["field"]
    wrong_type = client.post("/predict", json={"customer_id": "1001; DROP", "amount": 1.0})
    assert wrong_type.status_code == 422 and "customer_id" in wrong_type.json()["field"]
    meta = client.get("/metadata").json()
    assert meta["model"]["features"]["entity_keys"] == ["customer_id"]
    assert {c["name"] for c in meta["signature"]["inputs"]} == {
        "customer_id",
        "amount",
        "tx_count_7d",  # the one feature the spec lets a request override
    }


def test_request_values_override_stored_ones_only_where_the_spec_allows(
    trained: Trained, client: httpx.Client
) -> None:
    import mlflow

    frame, _, _ = _manual(trained, [1001], [50.0])
    model = mlflow.sklearn.load_model(f"models:/{trained.name}/1")
    sent = {"customer_id": 1001, "amount": 50.0, "tx_count_7d": 999, "chargeback_rate": 0.99}
    answer = client.post("/predict", json=sent).json()["predictions"][0]["probabilities"]["1"]
    overridden = frame.assign(tx_count_7d=999)  # allowed; chargeback_rate is not
    assert answer == pytest.approx(model.predict_proba(overridden)[0, 1], rel=1e-9)
    assert answer != pytest.approx(model.predict_proba(frame)[0, 1], rel=1e-9)


def test_newly_materialized_values_are_used_by_the_next_request(
    trained: Trained, client: httpx.Client
) -> None:
    from loopml.features.materialize import materialize

    stats = pd.read_parquet(trained.repo.stats)
    row = stats[stats["customer_id"] == 1003].tail(1).copy()
    # after the last materialization's end: incremental runs never pick up late rows
    row["event_timestamp"] = datetime.now(UTC)
    row["chargeback_rate"] = 0.95
    row["tx_count_7d"] = 40
    pd.concat([stats, row], ignore_index=True).to_parquet(trained.repo.stats, index=False)
    before = client.post("/predict", json={"customer_id": 1003, "amount": 45.0}).json()
    record = materialize(Settings(home=trained.settings.home), trained.repo.repo)
    assert record["status"] == "ok" and "customer_stats" in record["views"]
    after = client.post("/predict", json={"customer_id": 1003, "amount": 45.0}).json()
    _, expected, _ = _manual(trained, [1003], [45.0])
    assert after["predictions"][0]["probabilities"]["1"] == pytest.approx(expected[0], rel=1e-9)
    assert after != before


def test_batch_scoring_joins_offline_features_for_entity_only_files(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from loopml.cli.main import app
    from loopml.core.settings import get_settings

    settings = trained.settings
    for key, value in {
        "LOOPML_HOME": str(settings.home),
        "LOOPML_TRACKING_URI": settings.tracking,
        "LOOPML_DATABASE_URL": f"sqlite:///{tmp_path / 'batch.db'}",
        "LOOPML_TRUSTED_REGISTRARS": "*",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    source, scored = tmp_path / "entities.csv", tmp_path / "scored.csv"
    pd.DataFrame({"customer_id": CUSTOMERS, "amount": AMOUNTS}).to_csv(source, index=False)
    args = ["predict-batch", "--model", f"{trained.name}/1", "--input", str(source)]
    result = CliRunner().invoke(app, [*args, "--output", str(scored)])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    out = pd.read_csv(scored)
    _, expected, _ = _manual(trained, CUSTOMERS, AMOUNTS)  # newest values: the batch is "now"
    assert out["customer_id"].tolist() == CUSTOMERS
    np.testing.assert_allclose(out["probability_1"], expected, rtol=1e-9)
