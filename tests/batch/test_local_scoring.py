"""Batch scoring in this process: model references, the per-version cache, the prediction log,
and ``loopml predict-batch`` without ``--queue``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from loopml.batch import ModelRef, load_model, score_and_log
from loopml.batch.local import score_locally
from loopml.batch.models import single_threaded
from loopml.batch.scoring import batch_id, prediction_id
from loopml.cli.main import app
from loopml.core.errors import ModelNotFoundError
from loopml.core.settings import Settings, get_settings
from loopml.core.spec import parse_spec
from loopml.engine import run_pipeline
from loopml.store.batchlog import BatchLog, root_of
from loopml.store.predictions import BATCH, PredictionLog
from tests.queue.helpers import EXAMPLES, make_data, write_spec

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> tuple[Settings, str]:
    folder = tmp_path_factory.mktemp("batch")
    settings = Settings(
        home=folder / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{folder / 'loopml.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
    )
    name = f"local_{uuid.uuid4().hex[:6]}"
    spec = write_spec(folder, make_data(folder, 1500), name)
    run_pipeline(parse_spec(spec.read_text(), source=spec), settings)
    return settings, name


@pytest.fixture
def log(trained: tuple[Settings, str]) -> Iterator[BatchLog]:
    settings = trained[0]
    opened = BatchLog.open(settings.database, root_of(settings.artifacts, settings.home))
    yield opened
    opened.engine.dispose()


def _rows(count: int, seed: int = 3) -> pd.DataFrame:
    import sys

    sys.path.insert(0, str(EXAMPLES))
    from make_creditcard import make_creditcard

    return make_creditcard(count, seed=seed).drop(columns=["Class"])


def test_aliases_resolve_to_a_version_and_models_are_cached(trained: tuple[Settings, str]) -> None:
    settings, name = trained
    assert ModelRef.parse(f"{name}@champion").pin(settings) == ModelRef(name, None, "1")
    first = load_model(settings, ModelRef.parse(f"{name}@champion"))
    assert load_model(settings, ModelRef.parse(f"{name}/1")) is first
    with pytest.raises(ModelNotFoundError, match="no version has the alias 'nope'") as caught:
        ModelRef.parse(f"{name}@nope").resolve(settings)
    assert "its versions: 1 (challenger, champion)" in str(caught.value)  # what exists
    assert settings.tracking in str(caught.value)  # where it looked
    with pytest.raises(ModelNotFoundError, match="there is no version 7") as caught:
        load_model(settings, ModelRef.parse(f"{name}/7"))
    assert "its versions: 1 (" in str(caught.value)
    with pytest.raises(ModelNotFoundError, match="there is no registered model 'nobody'"):
        load_model(settings, ModelRef.parse("nobody/1"))


def test_scores_are_logged_once_per_prediction_id(
    trained: tuple[Settings, str], log: BatchLog
) -> None:
    settings, name = trained
    model = load_model(settings, ModelRef.parse(f"{name}@champion"))
    frame = _rows(50)
    batch = f"{uuid.uuid4().hex}-000000"
    scored = score_and_log(model, frame, batch, log)
    assert list(scored.columns) == ["prediction", "probability_0", "probability_1"]
    assert ((scored["probability_0"] + scored["probability_1"]).round(6) == 1).all()
    score_and_log(model, frame, batch, log)  # a redelivery
    predictions = PredictionLog(log.engine)
    assert predictions.count(batch_id=batch) == 50
    stored = next(predictions.frames(name))
    row = stored[stored["prediction_id"] == prediction_id(batch, 7)].iloc[0]
    assert row["model_version"] == "1"
    assert row["V1"] == pytest.approx(frame.iloc[7]["V1"])
    assert row["prediction"] == scored.iloc[7]["prediction"]
    assert set(row["probabilities"]) == {"0", "1"}


def test_local_scoring_in_chunks_reports_progress(
    trained: tuple[Settings, str], log: BatchLog
) -> None:
    settings, name = trained
    model = load_model(settings, ModelRef.parse(f"{name}/1"))
    frame = _rows(2500).set_index(pd.RangeIndex(100, 2600))
    seen: list[tuple[int, int]] = []
    run = uuid.uuid4().hex
    scored = score_locally(
        model, frame, log, batch_rows=1000, run_id=run, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert list(scored.index) == list(frame.index)
    assert scored["V3"].equals(frame["V3"])
    predictions = PredictionLog(log.engine)
    assert [predictions.count(batch_id=batch_id(run, n)) for n in range(3)] == [1000, 1000, 500]


def test_predict_batch_command_scores_a_file_locally(
    trained: tuple[Settings, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, name = trained
    for key, value in {
        "LOOPML_HOME": str(settings.home),
        "LOOPML_TRACKING_URI": settings.tracking,
        "LOOPML_DATABASE_URL": settings.database,
        "LOOPML_ARTIFACT_ROOT": settings.artifacts,
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    source = tmp_path / "rows.csv"
    _rows(300, seed=9).to_csv(source, index=False)
    target = tmp_path / "scored.parquet"
    command = ["predict-batch", "--model", f"{name}@champion", "--input", str(source)]
    try:
        result = runner.invoke(
            app,
            [*command, "--output", str(target), "--batch-rows", "128"],
        )
        assert result.exit_code == 0, result.output
        assert "scored 300 rows" in result.output
        scored = pd.read_parquet(target)
        assert len(scored) == 300 and {"prediction", "probability_1", "V28"} <= set(scored)

        bad = runner.invoke(
            app,
            [*command, "--output", str(tmp_path / "scored.xlsx")],
        )
        assert bad.exit_code == 2  # bad input
        assert "unsupported format '.xlsx'" in bad.output and ".csv" in bad.output
    finally:
        get_settings.cache_clear()
    log = PredictionLog.open(settings.database)
    frames = pd.concat(list(log.frames(name)))
    log.engine.dispose()
    assert (frames["model_version"] == "1").all()
    assert BATCH == "batch"


def test_lightgbm_scores_single_threaded() -> None:
    from lightgbm import LGBMClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    model: Any = Pipeline([("scale", StandardScaler()), ("model", LGBMClassifier(n_jobs=4))])
    single_threaded(model)
    assert model.named_steps["model"].get_params()["n_jobs"] == 1
