"""The prediction store goes down mid-test: serving goes on, and nothing is lost once it is back."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from loopml.store.predictions import PredictionLog
from tests.proxy import TcpProxy
from tests.serving.conftest import Registered, live_server, sample_rows, serving_settings, wait_for


@pytest.mark.postgres
def test_store_outage_spools_and_replays_every_prediction(
    registered: Registered, postgres_url: str, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = serving_settings(tmp_path / "home", registered.tracking_uri, proxied)
    direct = PredictionLog.open(postgres_url)  # the test's own view, not through the proxy
    before = direct.count(model_name=registered.name)
    rows = sample_rows(3)
    ids: list[str] = []
    try:
        with (
            live_server(settings, f"{registered.name}/1") as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            logger = server.app.state.serving.logger

            def send(n: int) -> None:
                for _ in range(n):
                    reply = client.post("/predict", json=rows)
                    assert reply.status_code == 200, reply.text
                    ids.extend(p["id"] for p in reply.json()["predictions"])

            send(5)
            wait_for(lambda: direct.count(model_name=registered.name) == before + 15)

            proxy.cut()
            send(10)  # the store is unreachable: answers keep coming
            labelled = ids[-1]
            feedback = client.post("/feedback", json={"prediction_id": labelled, "label": 0})
            assert feedback.status_code == 202
            wait_for(lambda: logger.status()["database_up"] is False)
            send(10)
            wait_for(lambda: logger.status()["spooled"] >= 60)
            status = client.get("/metadata").json()["prediction_log"]
            assert status["spool_pending"] is True and status["last_error"]
            assert direct.count(model_name=registered.name) == before + 15

            proxy.restore()
            wait_for(lambda: direct.count(model_name=registered.name) == before + 75, timeout=60)
            wait_for(lambda: not logger.status()["spool_pending"])
            wait_for(lambda: direct.labels([labelled]) == {labelled: 0})
            assert logger.status()["database_up"] is True
    finally:
        proxy.cut()
        direct.engine.dispose()
    assert len(ids) == 75 and all(direct.exists(i) for i in ids)
    assert not list((tmp_path / "home" / "spool").glob("predictions-*"))
