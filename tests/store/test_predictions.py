"""The prediction log on SQLite and PostgreSQL: idempotent writes, chunked reads, feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from loopml.core.settings import Settings
from loopml.store.predictions import (
    BATCH,
    LabelRecord,
    PredictionLog,
    PredictionRecord,
    new_prediction_id,
    prediction_records,
)
from loopml.store.tables import Feedback


def _records(count: int, start: datetime, *, batch_id: str | None = None) -> list[PredictionRecord]:
    return [
        PredictionRecord(
            id=new_prediction_id(),
            model_name="fraud",
            model_version="3",
            inputs={"V1": float(i), "kind": "a" if i % 2 else "b"},
            outputs={"prediction": i % 2, "probabilities": {"0": 0.25, "1": 0.75}},
            created_at=start + timedelta(seconds=i),
            source=BATCH if batch_id else "online",
            batch_id=batch_id,
            latency_ms=1.5,
        )
        for i in range(count)
    ]


def test_writes_are_idempotent_by_prediction_id(settings: Settings) -> None:
    log = PredictionLog.open(settings.database)
    records = _records(10, datetime(2026, 1, 1, tzinfo=UTC), batch_id="b1")
    log.write(records)
    log.write(records[5:])  # a replayed spool or a redelivered batch
    assert log.count() == 10
    assert log.count(batch_id="b1") == 10
    assert log.count(model_name="other") == 0
    assert log.exists(records[0].id)


def test_frames_walk_the_log_in_bounded_chunks_with_labels(settings: Settings) -> None:
    log = PredictionLog.open(settings.database)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = _records(25, start)
    log.write(records)
    log.add_feedback(records[3].id, 1)
    log.add_feedback(records[3].id, 0)  # a correction: the newest label wins
    chunks = list(log.frames("fraud", chunk_rows=10, with_feedback=True))
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    whole = [pid for chunk in chunks for pid in chunk["prediction_id"]]
    assert whole == [record.id for record in records]
    first = chunks[0]
    assert list(first["V1"][:3]) == [0.0, 1.0, 2.0]
    assert first.loc[3, "label"] == 0
    assert first["label"].isna().sum() == 9
    window = list(log.frames("fraud", since=start + timedelta(seconds=20)))
    assert len(window[0]) == 5


def test_large_writes_go_through_copy_and_stay_idempotent(settings: Settings) -> None:
    """600 rows (PostgreSQL: COPY through a staging table), twice: 600 rows, NaN stored as null."""
    log = PredictionLog.open(settings.database, timeout_s=10.0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_prediction_id() for _ in range(600)]
    records = prediction_records(
        ids,
        "fraud",
        "4",
        [{"V1": float("nan") if i == 0 else float(i)} for i in range(600)],
        [i % 2 for i in range(600)],
        [[0.5, 0.5]] * 600,
        ["0", "1"],
        created_at=start,
        source=BATCH,
        batch_id="big",
    )
    log.write(records)
    log.write(records[100:])
    assert log.count(batch_id="big") == 600
    frame = pd.concat(log.frames("fraud"))
    first = frame.set_index("prediction_id").loc[ids[0]]
    assert pd.isna(first["V1"]) and first["probabilities"] == {"0": 0.5, "1": 0.5}
    log.engine.dispose()


def test_labels_are_stored_only_for_known_predictions_with_their_version(
    settings: Settings,
) -> None:
    log = PredictionLog.open(settings.database)
    records = _records(2, datetime(2026, 1, 1, tzinfo=UTC))
    log.write(records)
    known = LabelRecord(records[0].id, 1)
    unknown = LabelRecord("0" * 32, 1)
    assert log.write_with_labels([], [known, unknown]) == [unknown]
    assert log.write_with_labels([], [known]) == []  # the same label again: stored once
    table = Feedback.__table__
    with log.engine.connect() as connection:
        rows = connection.execute(sa.select(table.c.prediction_id, table.c.model_version)).all()
    assert [tuple(row) for row in rows] == [(records[0].id, "3")]
    assert log.add_feedback("1" * 32, 0) is False


def test_prediction_records_are_built_one_way() -> None:
    made = prediction_records(
        ["a", "b"], "m", "2", [{"x": 1.0}, {"x": 2.0}], [1, 0], [[0.2, 0.8], [0.9, 0.1]], [0, 1]
    )
    assert [r.outputs for r in made] == [
        {"prediction": 1, "probabilities": {"0": 0.2, "1": 0.8}},
        {"prediction": 0, "probabilities": {"0": 0.9, "1": 0.1}},
    ]
    regression = prediction_records(["c"], "m", "2", [{"x": 1.0}], [3.5])
    assert regression[0].outputs == {"prediction": 3.5}
    assert PredictionRecord.from_entry(made[0].to_entry()) == made[0]


def _many(n: int, label: str = "m") -> list[PredictionRecord]:
    ids = [f"{i:032x}" for i in range(n)]
    return prediction_records(ids, label, "1", [{"a": 1.0, "b": 2.0}] * n, [1] * n)


def test_a_large_write_is_split_into_bounded_transactions(tmp_path: Path) -> None:
    # before: a whole segment (one large request: a batch sent to /predict in one body)
    # went in a single transaction, however many rows it held
    from loopml.store.predictions import ROWS_PER_TRANSACTION

    log = PredictionLog.open(f"sqlite:///{tmp_path / 'log.db'}")
    commits: list[int] = []
    sa.event.listen(log.engine, "commit", lambda connection: commits.append(1))
    rows = 2 * ROWS_PER_TRANSACTION + 5
    labels = [LabelRecord(f"{i:032x}", 1) for i in range(0, rows, 7)] + [LabelRecord("f" * 32, 0)]
    unknown = log.write_with_labels(_many(rows), labels)
    assert log.count() == rows
    assert [label.prediction_id for label in unknown] == ["f" * 32]
    assert len(commits) >= 4  # three for the predictions, one for the labels
    log.write_with_labels(_many(rows), [])  # a retry after a partial write: nothing doubled
    assert log.count() == rows


@pytest.mark.postgres
@pytest.mark.slow
def test_a_large_request_ships_within_the_statement_timeout(postgres_url: str) -> None:
    # before: 300,000 rows (a 4.5 MB /predict body, under the 16 MB limit) in one
    # transaction ran past the 3 s statement timeout on every retry: the store counted
    # as down forever and every prediction journaled after it stayed unshipped
    log = PredictionLog.open(postgres_url, timeout_s=3.0)
    try:
        log.write_with_labels(_many(300_000, "big"), [])
        assert log.count(model_name="big") == 300_000
    finally:
        log.engine.dispose()
