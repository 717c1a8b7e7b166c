"""Every endpoint of a real server (uvicorn on a free port) serving a real registered model."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from loopml.store.predictions import PredictionLog
from tests.serving.conftest import (
    RUNTIMES,
    TOLERANCE,
    LiveServer,
    Registered,
    live_server,
    sample_rows,
    serving_settings,
    wait_for,
)


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(
    registered: Registered, tmp_path_factory: pytest.TempPathFactory, runtime: str
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("endpoints")
    settings = serving_settings(
        home, registered.tracking_uri, f"sqlite:///{home / 'log.db'}", serve_runtime=runtime
    )
    with live_server(settings, f"{registered.name}@champion") as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def expected(registered: Registered) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Rows and what MLflow's own loaders say about them: the answers to match."""
    import mlflow

    rows = sample_rows(12)
    frame = pd.DataFrame(rows)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registered.name}/1")
    pipeline = mlflow.sklearn.load_model(f"models:/{registered.name}/1")
    return rows, np.asarray(pyfunc.predict(frame)), pipeline.predict_proba(frame)


def test_predict_records_and_one_record(client: httpx.Client, expected: Any, runtime: str) -> None:
    rows, predictions, probabilities = expected
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == {"name": "fraud_serving", "version": "1"}
    assert [p["prediction"] for p in body["predictions"]] == predictions.tolist()
    got = np.array(
        [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in body["predictions"]]
    )
    np.testing.assert_allclose(got, probabilities, rtol=1e-9, atol=TOLERANCE[runtime])
    ids = [p["id"] for p in body["predictions"]]
    assert len(set(ids)) == len(rows) and all(len(i) == 32 for i in ids)

    single = client.post("/predict", json=rows[0]).json()
    assert len(single["predictions"]) == 1
    assert single["predictions"][0]["prediction"] == predictions[0]
    assert single["predictions"][0]["id"] not in ids


def test_invocations_speaks_every_mlflow_format(client: httpx.Client, expected: Any) -> None:
    rows, predictions, _ = expected
    frame = pd.DataFrame(rows)
    split = frame.to_dict(orient="split")
    del split["index"]
    bodies = [
        {"dataframe_split": split},
        {"dataframe_records": rows},
        {"instances": rows},
        {"inputs": {column: frame[column].tolist() for column in frame.columns}},
        {"dataframe_records": rows, "params": {"anything": 1}},
    ]
    for body in bodies:
        answer = client.post("/invocations", json=body)
        assert answer.status_code == 200, (list(body), answer.text)
        assert answer.json() == {"predictions": predictions.tolist()}
    csv = client.post(
        "/invocations",
        content=frame.to_csv(index=False),
        headers={"content-type": "text/csv"},
    )
    assert csv.status_code == 200, csv.text
    assert csv.json() == {"predictions": predictions.tolist()}
    parquet = io.BytesIO()
    frame.to_parquet(parquet)
    answer = client.post(
        "/invocations",
        content=parquet.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert answer.json() == {"predictions": predictions.tolist()}


def test_invocations_errors_have_mlflow_shapes(client: httpx.Client, expected: Any) -> None:
    rows = expected[0]
    wrong_format = client.post("/invocations", json={"records": rows})
    assert wrong_format.status_code == 400
    assert wrong_format.json()["error_code"] == "BAD_REQUEST"
    assert "dataframe_split" in wrong_format.json()["message"]
    not_json = client.post(
        "/invocations", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    media = client.post("/invocations", content=b"x", headers={"content-type": "text/plain"})
    assert media.status_code == 415 and "content types" in media.text
    charset = client.post(
        "/invocations", content=b"{}", headers={"content-type": "application/json; charset=latin-1"}
    )
    assert charset.status_code == 415
    missing = client.post("/invocations", json={"dataframe_records": [{"V1": 1.0}]})
    assert missing.status_code == 422
    assert missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Time" in missing.json()["message"]
    bad_csv = client.post("/invocations", content=b"", headers={"content-type": "text/csv"})
    assert bad_csv.status_code == 400 and bad_csv.json()["error_code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("body", "field", "expected_text"),
    [
        (b"", "body", "JSON"),
        (b"[]", "records", "at least one row"),
        (b"{}", "records[0].Time", "a number"),
        (b'"text"', "records", "an object"),
        (b"[1, 2]", "records[0]", "an object"),
    ],
)
def test_predict_rejects_bad_bodies_with_422(
    client: httpx.Client, body: bytes, field: str, expected_text: str
) -> None:
    answer = client.post("/predict", content=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert expected_text in answer.json()["error"]


def test_predict_names_the_wrong_column_and_type(client: httpx.Client, expected: Any) -> None:
    rows = [dict(row) for row in expected[0][:3]]
    rows[2]["V14"] = "high"
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 422
    assert answer.json()["field"] == "records[2].V14"
    assert answer.json()["expected"] == "a number (double) or null"
    assert "'high'" in answer.json()["error"]
    del rows[2]["V14"]
    rows[1]["Amount"] = True
    missing = client.post("/predict", json=rows).json()
    assert missing["field"] == "records[1].Amount"
    rows[1]["Amount"] = 1.0
    answer = client.post("/predict", json=rows)
    assert answer.json()["field"] == "records[2].V14"
    assert "missing required column" in answer.json()["error"]


def test_health_version_metadata_metrics_docs(client: httpx.Client, runtime: str) -> None:
    import mlflow

    for path in ("/ping", "/health"):
        assert client.get(path).status_code == 200
    assert client.get("/version").text == mlflow.__version__
    meta = client.get("/metadata").json()
    assert meta["model"]["name"] == "fraud_serving" and meta["model"]["version"] == "1"
    assert meta["model"]["alias"] == "champion" and meta["model"]["flavor"] == "sklearn"
    assert meta["model"]["loaded_at"]
    assert meta["model"]["runtime"] == runtime
    if runtime == "onnx":
        detail = meta["model"]["runtime_detail"]
        assert detail["parity"]["passed"] and len(detail["onnx_sha256"]) == 64
    assert {c["name"] for c in meta["signature"]["inputs"]} >= {"Time", "V1", "Amount"}
    assert meta["last_load_error"] is None
    client.post("/predict", json={"Time": "bad"})
    metrics = client.get("/metrics").text
    assert 'loopml_model_version{model="fraud_serving"} 1.0' in metrics
    assert 'loopml_requests_total{endpoint="/predict",status="422"}' in metrics
    assert 'loopml_request_errors_total{endpoint="/predict",kind="client"}' in metrics
    assert "loopml_request_latency_seconds_bucket" in metrics
    assert "loopml_batch_rows_count" in metrics
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/invocations", "/v2/models/{name}/infer", "/feedback"} <= set(
        spec["paths"]
    )
    record = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert "V14" in record["schema"]["anyOf"][0]["properties"]


def test_every_prediction_and_feedback_reaches_the_log(
    server: LiveServer, client: httpx.Client, expected: Any, tmp_path: Path
) -> None:
    state = server.app.state.serving
    log = PredictionLog.open(state.settings.database)
    rows = expected[0]
    answers = [client.post("/predict", json=rows[:3]).json() for _ in range(5)]
    ids = [p["id"] for answer in answers for p in answer["predictions"]]
    wait_for(lambda: all(log.exists(i) for i in ids))

    def scored() -> float:
        return state.metrics.registry.get_sample_value("loopml_predictions_total") or 0.0

    # every row this server scored (all tests of the module) is in the log, once
    wait_for(lambda: log.count(model_name="fraud_serving") == scored() > 0)
    accepted = client.post("/feedback", json=[{"prediction_id": ids[0], "label": 1}])
    assert accepted.status_code == 202 and accepted.json() == {"accepted": 1}
    wait_for(lambda: log.labels([ids[0]]) == {ids[0]: 1})
    frame = pd.concat(list(log.frames("fraud_serving", with_feedback=True)))
    logged = frame.set_index("prediction_id").loc[ids[0]]
    assert logged["label"] == 1 and logged["model_version"] == "1"
    assert logged["V14"] == pytest.approx(rows[0]["V14"])
    bad = client.post("/feedback", json={"label": 1})
    assert bad.status_code == 422 and bad.json()["field"] == "body[0].prediction_id"
