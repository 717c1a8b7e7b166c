"""Batch scoring against the model's reference profile: schema skew fails the batch before
anything is written, value skew is recorded on every prediction of the batch."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from loopml.batch import ModelRef, load_model, score_and_log
from loopml.batch.local import score_locally
from loopml.batch.scoring import batch_id
from loopml.core.errors import SkewError
from loopml.core.settings import Settings
from loopml.store import batchlog
from loopml.store.batchlog import BatchLog, root_of
from loopml.store.predictions import PredictionLog
from tests.serving.test_skew import train_profiled, training_frame


@pytest.fixture(scope="module")
def profiled(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    folder = tmp_path_factory.mktemp("batch-profiled")
    settings = Settings(
        home=folder / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{folder / 'm.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
    )
    name = f"batch_profiled_{uuid.uuid4().hex[:6]}"
    train_profiled(settings, name, folder)
    return settings, name


def _frame() -> pd.DataFrame:
    frame = training_frame(600, 3).drop(columns=["Class"])
    return frame.sample(120, random_state=1).reset_index(drop=True)  # like the training rows


def test_schema_skew_fails_the_batch_and_writes_nothing(
    profiled: tuple[Settings, str], database_url: str
) -> None:
    settings, name = profiled
    model = load_model(settings, ModelRef(name, version="1"))
    assert model.checker is not None
    log = BatchLog.open(database_url, root_of(settings.artifacts, settings.home))
    try:
        retyped = _frame()
        retyped["V2"] = retyped["V2"].round(2).astype(str) + "x"
        with pytest.raises(SkewError) as caught:
            score_and_log(model, retyped, "job-retyped-000000", log)
        message = str(caught.value)
        assert "batch job-retyped-000000" in message and "'V2': retyped column" in message
        assert f"model {name} version 1" in message

        missing = _frame().drop(columns=["V1"]).assign(coupon=1)
        with pytest.raises(SkewError) as caught:
            score_locally(model, missing, log, batch_rows=50, run_id="job-missing")
        message = str(caught.value)
        assert "'V1': missing column" in message and "'coupon': extra column" in message
        assert "2 schema issue(s)" in message
        assert PredictionLog(log.engine).count(model_name=name) == 0  # nothing written
    finally:
        log.engine.dispose()


def test_value_skew_is_recorded_on_the_batch_predictions(
    profiled: tuple[Settings, str], database_url: str
) -> None:
    settings, name = profiled
    model = load_model(settings, ModelRef(name, version="1"))
    log = BatchLog.open(database_url, root_of(settings.artifacts, settings.home))
    try:
        frame = _frame()
        frame.loc[:59, "Amount"] = 1e9
        frame.loc[:59, "channel"] = "kiosk"
        scored = score_locally(model, frame, log, batch_rows=60, run_id="job-values")
        assert len(scored) == len(frame)
        plain = score_and_log(model, _frame(), "job-plain-000000", log)
        assert len(plain) == len(frame)
        found = [
            (row.batch_id, row.skew)
            for row in batchlog.segments(log.engine, model_name=name)
            for _ in range(row.rows)  # a chunk's skew holds for each of its predictions
        ]
    finally:
        log.engine.dispose()
    by_batch: dict[str, list[object]] = {}
    for batch, skew in found:
        by_batch.setdefault(str(batch), []).append(skew)
    skewed, clean = batch_id("job-values", 0), batch_id("job-values", 1)
    assert len(by_batch[skewed]) == 60 and len(by_batch[clean]) == 60
    first = by_batch[skewed][0]
    assert isinstance(first, dict) and all(skew == first for skew in by_batch[skewed])
    kinds = {(issue["column"], issue["what"]) for issue in first["value_issues"]}
    assert kinds == {("Amount", "out_of_range"), ("channel", "unseen_category")}
    assert by_batch[clean] == [None] * 60
    assert by_batch["job-plain-000000"] == [None] * 120
