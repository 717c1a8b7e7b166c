"""``loopml export`` of PyTorch models logged as ``run_mlflow_project`` logs them.

Each model is an ``mlflow.pytorch`` model with the project step's output contract
and reference profile next to it (:func:`loopml.steps.project._attach`),
registered through loopml: the example's own ``TabularMLP`` (class index, then
probabilities), a module returning probabilities only, a regressor, and a
module whose output the contract cannot read (refused, nothing written).
The models are tiny and trained for a few steps; one module-scoped store.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.settings import Settings, get_settings
from loopml.export.version import ARTIFACT_TAG, SHA256_TAG
from loopml.registry.models import get_version

torch = pytest.importorskip("torch", reason="the torch extra: pip install 'loopml[torch]'")
pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'loopml[onnx]'")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # MLflow logs five models (~40 s loaded)

EXAMPLE = Path(__file__).parents[2] / "examples" / "pytorch_tabular"
COLUMNS = ["amount", "age", "score"]


@dataclass(frozen=True)
class Models:
    settings: Settings
    versions: dict[str, str]  # registered name -> version
    data: pd.DataFrame


def _data() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(3)
    data = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 50.0, 240),
            "age": rng.integers(18, 90, 240).astype(float),
            "score": rng.normal(0.0, 1.0, 240),
        }
    )
    y = ((data["amount"] > 100) ^ (data["score"] > 0.5)).astype(int).to_numpy()
    return data, y


def _fit(module: Any, data: pd.DataFrame, target: Any, loss: Any, steps: int = 40) -> Any:
    torch.manual_seed(0)
    inputs = torch.from_numpy(data.to_numpy(np.float32))
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(inputs, target).backward()
        optimizer.step()
    return module.eval()


def _register(
    settings: Settings,
    name: str,
    module: Any,
    data: pd.DataFrame,
    problem_type: str,
    classes: list[Any] | None,
    code_paths: list[str] | None = None,
) -> str:
    """Log ``module`` with the project step's contract and profile; register it through loopml."""
    from mlflow.models import infer_signature

    from loopml.core.profile import build_profile
    from loopml.lifecycle import register
    from loopml.registry.tracking import ensure_experiment, use_tracking
    from loopml.steps.project import _attach

    mlflow = use_tracking(settings)
    example = data.head(5)
    with torch.no_grad():
        sample = module(torch.from_numpy(example.to_numpy(np.float32))).numpy()
    with mlflow.start_run(experiment_id=ensure_experiment(settings, f"torch-{name}")) as run:
        info = mlflow.pytorch.log_model(
            module,
            name="model",
            signature=infer_signature(example, sample),
            input_example=example,
            serialization_format="pickle",
            code_paths=code_paths,
            pip_requirements=["torch"],
        )
    _attach(mlflow.MlflowClient(), info.model_id, build_profile(data), problem_type, classes)
    registered, _ = register(settings, info.model_uri, name, {}, run_id=run.info.run_id)
    return registered.version


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> Models:
    folder = tmp_path_factory.mktemp("torch-export")
    settings = Settings(
        home=folder / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{folder / 'loopml.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
    )
    data, y = _data()
    labels = torch.from_numpy(y.astype(np.int64))
    sys.path.insert(0, str(EXAMPLE))
    try:
        from tabular_mlp import TabularMLP
    finally:
        sys.path.remove(str(EXAMPLE))
    values = data.to_numpy(np.float32)
    mlp = TabularMLP(values.mean(axis=0), values.std(axis=0), 8, 2)
    cross_entropy = torch.nn.CrossEntropyLoss()
    _fit(mlp, data, labels, lambda x, t: cross_entropy(mlp.logits(x), t))
    probabilities = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(dim=1))
    _fit(probabilities, data, labels, lambda x, t: cross_entropy(probabilities[0](x / 100), t))
    regressor = torch.nn.Linear(3, 1)
    amounts = torch.from_numpy(data[["amount"]].to_numpy(np.float32))
    _fit(regressor, data, amounts, lambda x, t: torch.mean((regressor(x) - t) ** 2))
    wrong = torch.nn.Linear(3, 4)  # four columns for two classes: neither layout of the contract
    # three columns read as (class index, probabilities), but column 0 is no class index
    no_index = torch.nn.Linear(3, 3)
    versions = {
        "torch_mlp": _register(
            settings,
            "torch_mlp",
            mlp,
            data,
            "classification",
            [0, 1],
            [str(EXAMPLE / "tabular_mlp.py")],
        ),
        "torch_probabilities": _register(
            settings, "torch_probabilities", probabilities, data, "classification", ["no", "yes"]
        ),
        "torch_regressor": _register(
            settings, "torch_regressor", regressor, data, "regression", None
        ),
        "torch_wrong": _register(settings, "torch_wrong", wrong, data, "classification", [0, 1]),
        "torch_no_index": _register(
            settings, "torch_no_index", no_index, data, "classification", [0, 1]
        ),
    }
    return Models(settings, versions, data)


@pytest.fixture
def env(models: Models, monkeypatch: pytest.MonkeyPatch) -> Iterator[Models]:
    settings = models.settings
    monkeypatch.setenv("LOOPML_HOME", str(settings.home))
    monkeypatch.setenv("LOOPML_TRACKING_URI", settings.tracking)
    monkeypatch.setenv("LOOPML_DATABASE_URL", settings.database)
    monkeypatch.setenv("LOOPML_ARTIFACT_ROOT", settings.artifacts)
    get_settings.cache_clear()
    yield models
    get_settings.cache_clear()


def _export(name: str, version: str, target: Path) -> Any:
    return CliRunner().invoke(
        app, ["export", f"{name}/{version}", "--output", str(target), "-o", "json"]
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("torch_mlp", "classifier"),
        ("torch_probabilities", "classifier"),
        ("torch_regressor", "regressor"),
    ],
)
def test_a_project_pytorch_model_exports_and_scores_like_the_model(
    env: Models, tmp_path: Path, name: str, kind: str
) -> None:
    from loopml.export.runtime import OnnxScorer
    from loopml.lifecycle import load_trusted
    from loopml.registry.reference import ModelReference

    version = env.versions[name]
    target = tmp_path / f"{name}.onnx"
    result = _export(name, version, target)
    assert result.exit_code == 0, result.output
    shape = json.loads(result.stdout)
    assert shape["parity"]["passed"] and shape["parity"]["label_mismatches"] == 0
    assert shape["parity"]["rows"] >= 200  # the input example and rows from the profile
    assert [item["columns"] for item in shape["inputs"]] == [COLUMNS]
    assert get_version(env.settings, name, version).tags[SHA256_TAG] == shape["sha256"]
    assert get_version(env.settings, name, version).tags[ARTIFACT_TAG].endswith(".onnx")

    # the file scores rows it was not checked on as the registered model does
    scorer = OnnxScorer(target.read_bytes())
    assert scorer.kind == kind
    loaded = load_trusted(env.settings, ModelReference.parse(f"{name}/{version}"))
    rows = env.data.sample(50, random_state=1)
    expected, got = loaded.score(rows), scorer.score(rows)
    if kind == "classifier":
        assert got.probabilities is not None and expected.probabilities is not None
        assert got.probabilities.shape == (50, 2)
        assert np.abs(got.probabilities - expected.probabilities).max() <= 1e-5
        assert np.asarray(got.predictions).tolist() == np.asarray(expected.predictions).tolist()
        assert set(np.asarray(got.predictions).tolist()) <= set(loaded.classes or [])
    else:
        assert np.allclose(got.predictions, expected.predictions, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("torch_wrong", "returns 4 columns per row; a classifier of 2 classes"),
        ("torch_no_index", "the model cannot score its reference rows"),
    ],
)
def test_a_module_whose_output_the_contract_cannot_read_is_refused(
    env: Models, tmp_path: Path, name: str, reason: str
) -> None:
    version = env.versions[name]
    target = tmp_path / "wrong.onnx"
    result = CliRunner().invoke(app, ["export", f"{name}/{version}", "--output", str(target)])
    assert result.exit_code == 2, result.output
    assert reason in " ".join(result.output.split()) and "docs/onnx.md" in result.output
    assert not target.exists() and not list(tmp_path.glob(".*partial"))
    assert SHA256_TAG not in get_version(env.settings, name, version).tags


def test_serve_runtime_onnx_serves_the_pytorch_model_as_the_pyfunc_scores_it(
    models: Models,
) -> None:
    """``--runtime onnx`` on a project model: exported (or its recorded export taken), parity-
    checked, then /predict answers with the contract's labels and probabilities."""
    import httpx

    from loopml.lifecycle import load_trusted
    from loopml.registry.reference import ModelReference
    from tests.serving.conftest import live_server

    name = "torch_probabilities"
    ref = f"{name}/{models.versions[name]}"
    settings = models.settings.model_copy(update={"serve_runtime": "onnx"})
    rows = models.data.sample(8, random_state=2)
    expected = load_trusted(settings, ModelReference.parse(ref)).score(rows)
    with live_server(settings, ref) as server:
        reply = httpx.post(f"{server.url}/predict", json=rows.to_dict(orient="records"))
        meta = httpx.get(f"{server.url}/metadata").json()
    assert reply.status_code == 200, reply.text
    assert (
        meta["model"]["runtime"] == "onnx" and meta["model"]["runtime_detail"]["parity"]["passed"]
    )
    body = reply.json()["predictions"]
    assert [p["prediction"] for p in body] == np.asarray(expected.predictions).tolist()
    assert expected.probabilities is not None
    got = [[p["probabilities"]["no"], p["probabilities"]["yes"]] for p in body]
    np.testing.assert_allclose(got, expected.probabilities, atol=1e-5)
