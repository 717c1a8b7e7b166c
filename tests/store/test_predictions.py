"""The prediction log on SQLite and PostgreSQL: idempotent writes, chunked reads, feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loopml.core.settings import Settings
from loopml.store.predictions import BATCH, PredictionLog, PredictionRecord, new_prediction_id


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
