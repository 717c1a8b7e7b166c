"""The columnar batch log: one atomic Parquet segment and one SQL row per chunk, read back by
monitoring, ``loopml monitor`` and feedback as one prediction log; engines by name."""

from __future__ import annotations

import json
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from loopml.batch import ModelRef, load_model, score_and_log
from loopml.batch.engines import BatchRequest, get_engine
from loopml.batch.results import count_logged, logged_ids
from loopml.batch.scoring import batch_id, prediction_id
from loopml.cli.main import app
from loopml.core.errors import ConfigError
from loopml.core.settings import Settings, get_settings
from loopml.core.spec import parse_spec
from loopml.engine import run_pipeline
from loopml.store import batchlog
from loopml.store.batchlog import BatchLog, root_of
from loopml.store.predictions import PredictionLog
from tests.queue.helpers import EXAMPLES, make_data, settings_env, write_spec

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, tracking_uri: str
) -> tuple[Settings, str, Path]:
    """A decision tree on the example data; its training file is the monitor's reference."""
    folder = tmp_path_factory.mktemp("batchlog")
    settings = Settings(
        home=folder / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{folder / 'loopml.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
    )
    name = f"blog_{uuid.uuid4().hex[:6]}"
    data = make_data(folder, 3000)
    spec = write_spec(folder, data, name)
    run_pipeline(parse_spec(spec.read_text(), source=spec), settings)
    return settings, name, data


@pytest.fixture
def env(trained: tuple[Settings, str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in settings_env(trained[0]).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def rows(count: int, seed: int) -> pd.DataFrame:
    sys.path.insert(0, str(EXAMPLES))
    from make_creditcard import make_creditcard

    return make_creditcard(count, seed=seed).drop(columns=["Class"])


def batch_log(settings: Settings) -> BatchLog:
    return BatchLog.open(settings.database, root_of(settings.artifacts, settings.home))


def test_a_chunk_is_one_segment_and_one_row_and_a_redelivery_overwrites_both(
    trained: tuple[Settings, str, Path],
) -> None:
    settings, name, _ = trained
    model = load_model(settings, ModelRef(name, version="1"))
    log = batch_log(settings)
    predictions = PredictionLog(log.engine)
    job = uuid.uuid4().hex
    frame = rows(500, seed=3)
    try:
        first = score_and_log(model, frame, batch_id(job, 0), log)
        again = score_and_log(model, frame, batch_id(job, 0), log)  # a redelivery
        score_and_log(model, frame.iloc[:7], batch_id(job, 1), log)
        assert first.equals(again)
        found = batchlog.segments(log.engine, job_id=job)
        assert [(row.chunk, row.rows) for row in found] == [(0, 500), (1, 7)]
        assert count_logged(predictions, job) == 507
        assert predictions.count(batch_id=batch_id(job, 1)) == 7
        ids = logged_ids(predictions, job).to_pylist()
        expected = [prediction_id(batch_id(job, 0), r) for r in range(500)]
        expected += [prediction_id(batch_id(job, 1), r) for r in range(7)]
        assert sorted(ids) == sorted(expected) and len(set(ids)) == 507
        folder = Path(found[0].uri.removeprefix("file://")).parent
        assert sorted(p.name for p in folder.iterdir()) == [
            "chunk-000000.parquet",
            "chunk-000001.parquet",
        ]  # no temp file left behind
        table = batchlog.read_segment(found[0].uri)
        assert table.column("input:V3").to_numpy() == pytest.approx(frame["V3"].to_numpy())
        assert table.column("prediction").to_pylist() == first["prediction"].tolist()
        assert table.column("probability:1").to_numpy() == pytest.approx(
            first["probability_1"].to_numpy()
        )
        # Feedback finds a batch-scored prediction by id, with its model version.
        assert predictions.add_feedback(expected[3], 1)
        assert not predictions.add_feedback("f" * 32, 1)
        assert predictions.labels([expected[3]]) == {expected[3]: 1}
        assert predictions.exists(expected[506])
        assert not predictions.exists(prediction_id(batch_id(job, 1), 7))  # chunk 1 has 7 rows
        frames = pd.concat(list(predictions.frames(name, with_feedback=True)))
        mine = frames[frames["prediction_id"].isin(expected)]
        assert len(mine) == 507 and mine["label"].notna().sum() == 1
        assert set(mine["probabilities"].iloc[0]) == {"0", "1"}
    finally:
        log.engine.dispose()


def test_a_killed_write_leaves_no_half_segment(tmp_path: Path) -> None:
    import pyarrow as pa

    target = (tmp_path / "seg.parquet").as_uri()
    batchlog.write_segment(pa.table({"a": [1, 2]}), target)

    class Exploding:
        num_rows = 1

    with pytest.raises((TypeError, AttributeError, pa.ArrowException)):
        batchlog.write_segment(Exploding(), target)  # type: ignore[arg-type]
    assert batchlog.read_segment(target).column("a").to_pylist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["seg.parquet"]


def _drifted_file(folder: Path, rows_count: int) -> Path:
    frame = rows(rows_count, seed=11)
    frame["V4"] = frame["V4"] + 6.0  # the planted drift
    path = folder / "drifted.parquet"
    frame.to_parquet(path, row_group_size=2_000)
    return path


def test_monitor_finds_drift_planted_in_a_batch_scored_file(
    trained: tuple[Settings, str, Path], env: None, tmp_path: Path
) -> None:
    settings, name, data = trained
    source = _drifted_file(tmp_path, 6_000)
    output = tmp_path / "scored.csv"
    scored = runner.invoke(
        app,
        [
            "predict-batch",
            "--model",
            f"{name}@champion",
            "--input",
            str(source),
            "--output",
            str(output),
            "--batch-rows",
            "2500",
            "-o",
            "json",
        ],
    )
    assert scored.exit_code == 0, scored.output
    summary = json.loads(scored.stdout)
    assert summary["rows"] == 6_000 and summary["chunks"] == 3 and summary["engine"] == "local"
    assert summary["rows_per_second"] > 0 and summary["batch_id"]
    assert len(pd.read_csv(output)) == 6_000
    log = PredictionLog.open(settings.database)
    try:
        assert count_logged(log, summary["batch_id"]) == 6_000
        with log.engine.connect() as connection:
            import sqlalchemy as sa

            online = connection.execute(
                sa.text("SELECT count(*) FROM predictions WHERE model_name = :n"), {"n": name}
            ).scalar_one()
        assert online == 0  # the window holds batch rows only
    finally:
        log.engine.dispose()
    reference = tmp_path / "reference.csv"
    with zipfile.ZipFile(data) as archive:
        inner = archive.namelist()[0]
        with archive.open(inner) as handle:
            pd.read_csv(handle).to_csv(reference, index=False)
    checked = runner.invoke(
        app,
        [
            "monitor",
            name,
            "--reference",
            str(reference),
            "--target",
            "Class",
            "--window",
            "100000",
            "--all",
            "--no-champion",
            "-o",
            "json",
        ],
    )
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    windows = report["windows"]
    assert sum(w["rows"] for w in windows) >= 6_000
    drifted = {column for w in windows for column in w["drifted"]}
    assert "V4" in drifted, windows
    assert "V9" not in drifted  # an untouched column stays quiet


def test_schema_skew_is_refused_before_anything_is_written(
    trained: tuple[Settings, str, Path], env: None, tmp_path: Path
) -> None:
    settings, name, _ = trained
    source = tmp_path / "rows.csv"
    frame = rows(900, seed=5)
    frame["V2"] = frame["V2"].astype(object)
    frame.loc[700, "V2"] = "oops"  # a bad value in the last chunk of three
    frame.to_csv(source, index=False)
    before = _jobs(settings, name)
    output = tmp_path / "scored.parquet"
    result = runner.invoke(
        app,
        [
            "predict-batch",
            "--model",
            f"{name}/1",
            "--input",
            str(source),
            "--output",
            str(output),
            "--batch-rows",
            "300",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "V2" in result.output and "rows 600-899" in result.output
    assert not output.exists() and not list(tmp_path.glob(".scored*"))
    assert _jobs(settings, name) == before  # the two chunks scored before it were taken back


def _jobs(settings: Settings, name: str) -> set[str]:
    engine = batch_log(settings).engine
    try:
        return {row.job_id for row in batchlog.segments(engine, model_name=name)}
    finally:
        engine.dispose()


def test_engines_are_picked_by_name_and_plugins_register_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert type(get_engine("local")).__name__ == "LocalEngine"
    with pytest.raises(ConfigError, match="no batch engine named 'nope'") as caught:
        get_engine("nope")
    assert "local, queue, spark" in str(caught.value)
    # A real installed distribution (a dist-info folder on sys.path) with an entry point.
    (tmp_path / "echo_engine.py").write_text(
        "class Echo:\n"
        "    name = 'echo'\n"
        "    def score(self, request, progress=None):\n"
        "        return request.batch_rows\n"
    )
    info = tmp_path / "echo_engine-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-engine\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[loopml.batch_engines]\necho = echo_engine:Echo\nlocal = echo_engine:Echo\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    engine = get_engine("echo")
    request: Any = BatchRequest(settings=None, model=None, input="", output="", batch_rows=7)  # type: ignore[arg-type]
    assert engine.score(request) == 7
    assert type(get_engine("local")).__name__ == "LocalEngine"  # a plugin cannot replace it


def test_scoring_order_and_values_match_in_process_predict(
    trained: tuple[Settings, str, Path], tmp_path: Path
) -> None:
    settings, name, _ = trained
    frame = rows(3_000, seed=21)
    source = tmp_path / "rows.parquet"
    frame.to_parquet(source, row_group_size=700)  # row groups never line up with chunks
    output = tmp_path / "scored.parquet"
    request = BatchRequest(
        settings=settings,
        model=ModelRef(name, version="1"),
        input=str(source),
        output=str(output),
        batch_rows=1_000,
    )
    seen: list[tuple[int, int | None]] = []
    result = get_engine("local").score(request, lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert result.rows == 3_000 and result.chunks == 3
    scored = pd.read_parquet(output)
    model = load_model(settings, ModelRef(name, version="1"))
    labels, probabilities = model.predict(frame)
    assert np.array_equal(scored["prediction"].to_numpy(), labels)
    assert scored["V5"].to_numpy() == pytest.approx(frame["V5"].to_numpy())
    assert probabilities is not None
    assert scored["probability_1"].to_numpy() == pytest.approx(probabilities[:, 1])
