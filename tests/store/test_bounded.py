"""Bounded writes: a network that hangs mid-transaction must not lock prediction ids for hours."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from loopml.store.predictions import PredictionLog, PredictionRecord, new_prediction_id
from loopml.store.tables import Prediction
from tests.proxy import TcpProxy

pytestmark = pytest.mark.postgres


def _records(count: int) -> list[PredictionRecord]:
    now = datetime.now(UTC)
    return [
        PredictionRecord(
            id=new_prediction_id(),
            model_name="hung",
            model_version="1",
            inputs={"V1": float(i)},
            outputs={"prediction": i % 2},
            created_at=now,
        )
        for i in range(count)
    ]


def _stored(url: str, ids: list[str]) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(sa.func.count()).where(Prediction.__table__.c.id.in_(ids))
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("count", [25, 600], ids=["insert", "copy"])
def test_a_commit_lost_in_a_hang_leaves_its_ids_free_for_the_next_writer(
    postgres_url: str, count: int
) -> None:
    # before: the INSERT reached the server, the proxy swallowed the COMMIT, and the
    # server kept that transaction open, with row locks on every id, until its TCP
    # keepalive gave up (two hours). The next process's journal shipper, writing the
    # same ids, timed out on those locks on every retry: nothing it held was shipped.
    PredictionLog.open(postgres_url).engine.dispose()  # migrated before the proxy breaks
    proxy = TcpProxy("127.0.0.1", 5432).start()
    records = _records(count)
    ids = [record.id for record in records]
    through = PredictionLog.open(
        postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), timeout_s=1.0
    )
    direct = PredictionLog.open(postgres_url, timeout_s=1.0)
    try:
        # the rows reach the server; the COMMIT is read by the proxy and held
        sa.event.listen(through.engine, "commit", lambda _connection: proxy.hang())
        with pytest.raises(sa.exc.OperationalError):
            through.write(records)
        assert _stored(postgres_url, ids) == 0

        attempts, deadline = 0, time.monotonic() + 30
        while True:
            attempts += 1
            try:
                direct.write(records)
                break
            except sa.exc.OperationalError as error:
                assert time.monotonic() < deadline, f"still failing after {attempts}: {error}"
                time.sleep(0.5)
        assert _stored(postgres_url, ids) == len(records)
    finally:
        through.engine.dispose()
        direct.engine.dispose()
        proxy.close()
