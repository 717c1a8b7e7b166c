"""Open Inference Protocol V2, driven by NVIDIA's ``tritonclient`` in JSON and binary modes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from loopml.core.settings import Settings
from tests.serving.conftest import (
    RUNTIMES,
    TOLERANCE,
    LiveServer,
    Registered,
    live_server,
    sample_rows,
    serving_settings,
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("v2")


@pytest.fixture(scope="module")
def settings(registered: Registered, home: Path) -> Settings:
    return serving_settings(home, registered.tracking_uri, f"sqlite:///{home / 'log.db'}")


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(registered: Registered, settings: Settings, runtime: str) -> Iterator[LiveServer]:
    served = settings.model_copy(update={"serve_runtime": runtime})
    with live_server(served, f"models:/{registered.name}@champion") as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LiveServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{server.port}")


def _inputs(frame: pd.DataFrame, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for column in frame.columns:
        values = frame[column].to_numpy()
        if values.dtype.kind in "OUS":
            values = values.astype(object)
            tensor = triton.InferInput(column, [len(values)], "BYTES")
        else:
            tensor = triton.InferInput(column, [len(values)], "FP64")
            values = values.astype(np.float64)
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_health_and_metadata(client: triton.InferenceServerClient, registered: Registered) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(registered.name)
    assert client.is_model_ready(registered.name, "1")
    assert not client.is_model_ready(registered.name, "7")
    assert not client.is_model_ready("someone_else")
    server = client.get_server_metadata()
    assert server["name"] == "loopml" and "binary_tensor_data" in server["extensions"]
    meta = client.get_model_metadata(registered.name)
    assert meta["versions"] == ["1"]
    assert {"name": "V14", "datatype": "FP64", "shape": [-1]} in meta["inputs"]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba", "prediction_id"]
    with pytest.raises(InferenceServerException, match="not served here"):
        client.get_model_metadata("someone_else")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_matches_the_pipeline(
    client: triton.InferenceServerClient, registered: Registered, binary: bool, runtime: str
) -> None:
    import mlflow

    frame = pd.DataFrame(sample_rows(9, seed=21))
    pipeline = mlflow.sklearn.load_model(f"models:/{registered.name}/1")
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("predict", "predict_proba", "prediction_id")
    ]
    result = client.infer(
        registered.name,
        _inputs(frame, binary),
        outputs=outputs,
        parameters={"content_type": "pd"},
    )
    np.testing.assert_array_equal(result.as_numpy("predict"), pipeline.predict(frame))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), pipeline.predict_proba(frame), atol=TOLERANCE[runtime]
    )
    ids = result.as_numpy("prediction_id")
    assert len({i.decode() if isinstance(i, bytes) else i for i in ids}) == 9
    response = result.get_response()
    assert response["model_name"] == registered.name and response["model_version"] == "1"
    # no outputs named -> every output, as the protocol says
    default = client.infer(registered.name, _inputs(frame, binary), model_version="1")
    np.testing.assert_array_equal(default.as_numpy("predict"), pipeline.predict(frame))
    np.testing.assert_allclose(
        default.as_numpy("predict_proba"), pipeline.predict_proba(frame), atol=TOLERANCE[runtime]
    )
    default_ids = default.as_numpy("prediction_id")
    assert default_ids is not None and len(set(default_ids.tolist())) == 9
    assert [o["name"] for o in default.get_response()["outputs"]] == list(
        ("predict", "predict_proba", "prediction_id")
    )


def test_config_and_statistics_through_tritonclient(
    client: triton.InferenceServerClient, registered: Registered, server: LiveServer
) -> None:
    before = client.get_inference_statistics(registered.name)["model_stats"][0]
    frame = pd.DataFrame(sample_rows(4, seed=5))
    client.infer(registered.name, _inputs(frame, True))
    with pytest.raises(InferenceServerException):
        client.infer(registered.name, _inputs(frame.drop(columns=["V3"]), True))
    config = client.get_model_config(registered.name)
    assert config["name"] == registered.name
    assert {"name": "V14", "data_type": "TYPE_FP64", "dims": [-1]} in config["input"]
    assert [o["name"] for o in config["output"]] == ["predict", "predict_proba", "prediction_id"]
    assert client.get_model_config(registered.name, "1") == config
    after = client.get_inference_statistics(registered.name, "1")["model_stats"][0]
    assert after["name"] == registered.name and after["version"] == "1"
    assert after["inference_count"] == before["inference_count"] + 4
    assert after["execution_count"] == before["execution_count"] + 1
    success = after["inference_stats"]["success"]
    assert success["count"] == before["inference_stats"]["success"]["count"] + 1
    assert success["ns"] > before["inference_stats"]["success"]["ns"]
    fail = after["inference_stats"]["fail"]["count"]
    assert fail == before["inference_stats"]["fail"]["count"] + 1
    for path in ("config", "stats", "versions/9/config", "versions/9/stats"):
        model = "someone_else" if "versions" not in path else registered.name
        answer = httpx.get(f"{server.url}/v2/models/{model}/{path}")
        assert answer.status_code == 404 and set(answer.json()) == {"error"}, answer.text
    with pytest.raises(InferenceServerException, match="not served here"):
        client.get_model_config("someone_else")


def test_infer_errors(client: triton.InferenceServerClient, server: LiveServer) -> None:
    frame = pd.DataFrame(sample_rows(2))
    with pytest.raises(InferenceServerException, match="missing required column"):
        client.infer("fraud_serving", _inputs(frame.drop(columns=["V3"]), True))
    wrong = frame.astype({"V5": str})
    with pytest.raises(InferenceServerException, match="V5"):
        client.infer("fraud_serving", _inputs(wrong, True))
    with pytest.raises(InferenceServerException, match="not loaded"):
        client.infer("fraud_serving", _inputs(frame, False), model_version="9")
    with pytest.raises(InferenceServerException, match="unknown output"):
        client.infer(
            "fraud_serving", _inputs(frame, False), outputs=[triton.InferRequestedOutput("x")]
        )
    raw = httpx.post(f"{server.url}/v2/models/fraud_serving/infer", content=b"{")
    assert raw.status_code == 400 and "error" in raw.json()
    short = httpx.post(
        f"{server.url}/v2/models/fraud_serving/infer",
        content=b'{"inputs": []}',
        headers={"Inference-Header-Content-Length": "99"},
    )
    assert short.status_code == 400 and "Inference-Header-Content-Length" in short.json()["error"]
    empty = httpx.post(f"{server.url}/v2/models/fraud_serving/infer", json={"inputs": []})
    assert empty.status_code == 422 and "inputs" in empty.json()["error"]


def test_one_matrix_input_in_signature_order(server: LiveServer, registered: Registered) -> None:
    rows = sample_rows(3)
    columns = list(rows[0])
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": [3, len(columns)],
                "datatype": "FP64",
                "data": [[row[c] for c in columns] for row in rows],
            }
        ]
    }
    answer = httpx.post(f"{server.url}/v2/models/{registered.name}/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["shape"] == [3]


@pytest.fixture(scope="module")
def shops_model(registered: Registered, settings: Settings) -> str:
    """A pipeline with a string column (one-hot encoded), logged straight through MLflow."""
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from loopml.registry.tracking import ensure_experiment, use_tracking

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "merchant": rng.choice(["grocer", "casino", "fuel"], 300).astype(object),
            "amount": rng.gamma(2, 30, 300),
        }
    )
    target = ((frame["merchant"] == "casino") & (frame["amount"] > 40)).astype(int)
    pipeline = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [("merchant", OneHotEncoder(handle_unknown="ignore"), ["merchant"])],
                    remainder="passthrough",
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(frame, target)
    mlflow = use_tracking(settings)
    experiment = ensure_experiment(settings, "serving-shops")
    with mlflow.start_run(experiment_id=experiment):
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(frame, pipeline.predict(frame)),
            registered_model_name="shops",
        )
    return "shops"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_strings_travel_as_bytes(shops_model: str, settings: Settings, binary: bool) -> None:
    frame = pd.DataFrame(
        {
            "merchant": np.array(["casino", "grocer", "unseen"], dtype=object),
            "amount": [90.0, 5, 50],
        }
    )
    with live_server(settings, f"{shops_model}/1") as running:
        client = triton.InferenceServerClient(f"127.0.0.1:{running.port}")
        meta = client.get_model_metadata(shops_model)
        assert {"name": "merchant", "datatype": "BYTES", "shape": [-1]} in meta["inputs"]
        result = client.infer(
            shops_model,
            _inputs(frame, binary),
            outputs=[triton.InferRequestedOutput("predict_proba", binary_data=binary)],
            parameters={"content_type": "pd"},
        )
        proba = result.as_numpy("predict_proba")
        assert proba.shape == (3, 2) and proba[0, 1] > proba[1, 1]
        records = httpx.post(f"{running.url}/predict", json=frame.to_dict(orient="records"))
        assert records.status_code == 200, records.text
        wrong = httpx.post(f"{running.url}/predict", json={"merchant": 3, "amount": 1.0})
        assert wrong.status_code == 422
        assert wrong.json()["field"] == "records[0].merchant"
        assert wrong.json()["expected"] == "a string or null"
        assert running.app.state.serving.watcher is None  # a fixed version is not watched
        # an empty CSV cell in a string column is a null, as null is in JSON
        csv = "merchant,amount\ncasino,90\n,50\n"
        as_csv = httpx.post(
            f"{running.url}/invocations", content=csv, headers={"Content-Type": "text/csv"}
        )
        rows = [{"merchant": "casino", "amount": 90}, {"merchant": None, "amount": 50}]
        as_json = httpx.post(f"{running.url}/predict", json=rows)
        assert as_csv.status_code == 200, as_csv.text
        assert as_json.status_code == 200, as_json.text
        expected = [row["prediction"] for row in as_json.json()["predictions"]]
        assert as_csv.json()["predictions"] == expected and len(expected) == 2
