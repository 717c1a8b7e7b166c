"""``loopml export`` on real registered versions, and ``--runtime onnx``'s hot swap.

The protocol tests (test_endpoints.py, test_v2.py) run against both runtimes;
these cover what only the ONNX runtime does: the file and its record on the
version, the refusal of a graph that scores differently, and a promoted
version that must pass the parity check before it serves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.settings import Settings, get_settings
from loopml.export.version import ARTIFACT_TAG, SHA256_TAG
from loopml.registry.models import get_version, register_version, set_alias
from tests.export.pipelines import fitted
from tests.export.registry import register_pipeline
from tests.serving.conftest import Registered, live_server, sample_rows, serving_settings, wait_for


@pytest.fixture
def env(
    registered: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    settings = serving_settings(
        tmp_path / "home", registered.tracking_uri, f"sqlite:///{tmp_path / 'm.db'}"
    )
    monkeypatch.setenv("LOOPML_HOME", str(settings.home))
    monkeypatch.setenv("LOOPML_TRACKING_URI", settings.tracking)
    monkeypatch.setenv("LOOPML_DATABASE_URL", settings.database)
    monkeypatch.setenv("LOOPML_ARTIFACT_ROOT", settings.artifacts)
    monkeypatch.setenv("LOOPML_TRUSTED_REGISTRARS", "*")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def _mismatching(settings: Settings, name: str) -> str:
    """A version whose ONNX graph differs (XGBoost behind a scaler, values float32 cannot hold)."""
    rng = np.random.default_rng(5)
    data = pd.DataFrame(
        {"balance": 1e6 + rng.integers(0, 4000, 400) * 0.37, "age": rng.integers(18, 90, 400) * 1.0}
    )
    y = ((data["balance"] * 100).round() % 7 < 3).astype(int).to_numpy()
    return register_pipeline(
        settings, name, fitted("classification", "xgboost", data, y, normalize=True), data
    )


def test_export_writes_logs_and_reports(
    env: Settings, registered: Registered, tmp_path: Path
) -> None:
    version = register_version(env, registered.source, "fraud_export", {}).version
    set_alias(env, "fraud_export", "champion", version)
    target = tmp_path / "fraud.onnx"
    runner = CliRunner()
    result = runner.invoke(app, ["export", "fraud_export@champion", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert "bytes" in result.output and "one-row latency p50" in result.output
    data = target.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    assert f"{len(data):,} bytes" in result.output and sha256 in result.output

    tags = get_version(env, "fraud_export", version).tags
    assert tags[SHA256_TAG] == sha256
    import mlflow

    logged = mlflow.artifacts.download_artifacts(tags[ARTIFACT_TAG], dst_path=str(tmp_path / "d"))
    assert Path(logged).read_bytes() == data

    again = runner.invoke(
        app,
        ["export", f"fraud_export/{version}", "--output", str(target), "--overwrite", "-o", "json"],
    )
    assert again.exit_code == 0, again.output
    shape = json.loads(again.stdout)
    assert shape["size_bytes"] == len(target.read_bytes()) and shape["format"] == "onnx"
    assert shape["parity"]["passed"] and shape["parity"]["max_abs_diff"] <= 1e-5
    assert shape["one_row_latency_ms"]["p50"] > 0
    assert [i["name"] for i in shape["inputs"]][:2] == ["Time", "V1"]


def test_export_refuses_a_graph_that_scores_differently(env: Settings, tmp_path: Path) -> None:
    version = _mismatching(env, "xgb_scaled")
    target = tmp_path / "no.onnx"
    result = CliRunner().invoke(app, ["export", f"xgb_scaled/{version}", "--output", str(target)])
    assert result.exit_code == 2, result.output
    assert "max abs difference" in result.output and "allowed 1e-05" in result.output
    assert not target.exists() and not list(tmp_path.glob(".*partial"))
    _nothing_logged(env, "xgb_scaled", version)

    missing = CliRunner().invoke(app, ["export", "nobody@champion", "--output", str(target)])
    assert missing.exit_code == 2 and not target.exists()


def _nothing_logged(settings: Settings, name: str, version: str) -> None:
    """No export tag on the version and no ONNX file among its run's artifacts."""
    from loopml.export.version import ARTIFACT_DIR, PARITY_TAG
    from loopml.registry.tracking import use_tracking

    found = get_version(settings, name, version)
    assert not {SHA256_TAG, ARTIFACT_TAG, PARITY_TAG} & set(found.tags), found.tags
    client = use_tracking(settings).MlflowClient()
    run_id = client.get_model_version(name, version).run_id
    assert client.list_artifacts(run_id, ARTIFACT_DIR) == []


def test_export_refuses_a_step_without_a_converter_by_its_name(
    env: Settings, tmp_path: Path
) -> None:
    """A spline basis between the columns and the model: skl2onnx has no converter for it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import SplineTransformer

    rng = np.random.default_rng(2)
    data = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    pipeline = Pipeline([("spline", SplineTransformer()), ("model", LogisticRegression())])
    pipeline.fit(data, (data["a"] > 0).astype(int))
    version = register_pipeline(env, "spline_model", pipeline, data)
    target = tmp_path / "no.onnx"
    result = CliRunner().invoke(app, ["export", f"spline_model/{version}", "--output", str(target)])
    assert result.exit_code == 2, result.output
    assert "step 'spline' (SplineTransformer) has no ONNX converter" in result.output
    assert "Traceback" not in result.output and "shape calculator" not in result.output
    assert not target.exists() and not list(tmp_path.glob(".*partial"))
    _nothing_logged(env, "spline_model", version)


def test_onnx_runtime_parity_checks_a_promoted_version_before_it_serves(
    env: Settings, registered: Registered
) -> None:
    settings = env.model_copy(update={"serve_runtime": "onnx", "serve_watch_interval_s": 0.3})
    name = "fraud_onnx_swap"
    first = register_version(settings, registered.source, name, {}).version
    set_alias(settings, name, "champion", first)
    rows = sample_rows(3)
    with live_server(settings, f"{name}@champion") as server:
        assert httpx.post(f"{server.url}/predict", json=rows).status_code == 200
        # a version whose graph scores differently: refused, the old one keeps serving
        bad = _mismatching(settings, name)
        set_alias(settings, name, "champion", bad)
        error = wait_for(lambda: httpx.get(f"{server.url}/metadata").json()["last_load_error"])
        assert error["version"] == bad and error["still_serving"] == first
        assert "ParityError" in error["error"] and "max abs difference" in error["error"]
        reply = httpx.post(f"{server.url}/predict", json=rows)
        assert reply.status_code == 200 and reply.json()["model"]["version"] == first
        # a good version: exported, checked, recorded on the version, then served
        good = register_version(settings, registered.source, name, {}).version
        set_alias(settings, name, "champion", good)
        wait_for(lambda: httpx.get(f"{server.url}/metadata").json()["model"]["version"] == good)
        meta = httpx.get(f"{server.url}/metadata").json()
        assert meta["model"]["runtime"] == "onnx" and meta["last_load_error"] is None
        tags = get_version(settings, name, good).tags
        assert meta["model"]["runtime_detail"]["onnx_sha256"] == tags[SHA256_TAG]
        reply = httpx.post(f"{server.url}/predict", json=rows)
        assert reply.status_code == 200 and reply.json()["model"]["version"] == good


def test_serve_refuses_an_unknown_runtime(env: Settings) -> None:
    result = CliRunner().invoke(app, ["serve", "--model", "any@champion", "--runtime", "tflite"])
    assert result.exit_code == 2 and "use pyfunc or onnx" in result.output
