"""The compose topology on loopback, for real: every service the compose file starts.

PostgreSQL (the machine's; one database for MLflow, one for loopml), SeaweedFS as the
S3 server, ``mlflow server`` proxying artifacts to the bucket, RabbitMQ (the machine's,
a queue prefix of this test's own), ``loopml api``, two ``loopml worker``s, ``loopml
serve`` and a scheduled ``loopml monitor``. The test drives it only from outside, as a
user would: HTTP to the API and the model server, the CLI for batch scoring and
promotion, the MLflow REST API and the S3 API to look at what was stored.
"""

from __future__ import annotations

import csv
import re
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, fresh_postgres_database, require_service
from tests.deploy.services import (
    Service,
    files_under,
    free_port,
    http,
    loopml,
    mlflow_server,
    run_cli,
    s3_keys,
    seaweed_s3,
    wait_http,
    wait_s3,
)
from tests.queue.helpers import (
    RABBIT_HOST,
    RABBIT_PORT,
    RABBIT_URL,
    delete_topology,
    make_data,
    wait_for,
    write_spec,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

API_KEY = "topology-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MODEL = "topology_fraud"


def _spec(data: Path, estimator: str) -> str:
    """The spec text a client posts: load, train one estimator, evaluate, register."""
    return write_spec(data.parent, data, MODEL, estimators=(estimator,)).read_text()


def _feature_rows(data: Path, count: int) -> list[dict[str, Any]]:
    import pandas as pd

    frame = pd.read_csv(data).drop(columns=["Class"]).head(count)
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _registered(tracking: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"filter": f"name='{MODEL}'"})
    status, body = http("GET", f"{tracking}/api/2.0/mlflow/registered-models/search?{query}")
    assert status == 200, body
    found = [m for m in body.get("registered_models", []) if m["name"] == MODEL]
    return found[0] if found else {}


def _aliases(tracking: str) -> dict[str, str]:
    return {a["alias"]: a["version"] for a in _registered(tracking).get("aliases", [])}


def _versions(tracking: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"filter": f"name='{MODEL}'"})
    status, body = http("GET", f"{tracking}/api/2.0/mlflow/model-versions/search?{query}")
    assert status == 200, body
    return list(body.get("model_versions", []))


def _logged(database: str) -> int:
    """Predictions in the log: online rows plus the rows of batch segments."""
    online = _count(database, "SELECT count(*) FROM predictions")
    return online + _count(database, "SELECT coalesce(sum(rows), 0) FROM batch_segments")


def _count(database: str, sql: str) -> int:
    engine = sa.create_engine(database)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_the_compose_topology_trains_serves_swaps_and_keeps_models_in_s3(tmp_path: Path) -> None:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    require_service("RabbitMQ", RABBIT_HOST, RABBIT_PORT)
    from loopml.store.db import connect
    from loopml.store.jobs import JobStore

    prefix = f"loopml-topology-{uuid.uuid4().hex[:8]}."
    services: list[Service] = []

    def start(service: Service) -> Service:
        services.append(service.start())
        return service

    with (
        fresh_postgres_database("mlflow") as mlflow_db,
        fresh_postgres_database("meta") as meta_db,
    ):
        try:
            s3, s3_endpoint = seaweed_s3(tmp_path / "s3")
            start(s3)
            mlflow, tracking = mlflow_server(tmp_path / "mlflow", mlflow_db, s3_endpoint)
            start(mlflow)
            env = {
                "LOOPML_TRACKING_URI": tracking,
                "LOOPML_DATABASE_URL": meta_db,
                "LOOPML_BROKER_URL": RABBIT_URL,
                "LOOPML_QUEUE_PREFIX": prefix,
                "LOOPML_API_KEYS": API_KEY,
                "LOOPML_SERVE_API_KEYS": API_KEY,
                "LOOPML_SERVE_WATCH_INTERVAL_S": "1",
                # specs posted to the API may read data only under the data roots
                "LOOPML_DATA_ROOTS": str(tmp_path / "data"),
            }
            connect(meta_db).dispose()  # the schema, once, before several processes race to it
            api_port = free_port()
            api = start(loopml("api", tmp_path / "api", ["api", "--port", str(api_port)], env))
            workers = [
                start(loopml(f"worker{i}", tmp_path / f"worker{i}", ["worker"], env))
                for i in range(2)
            ]
            wait_s3(s3_endpoint, s3)
            wait_http(f"{tracking}/health", mlflow, timeout=180, ok=lambda s: s == 200)
            api_url = f"http://127.0.0.1:{api_port}"
            wait_http(f"{api_url}/jobs", api, timeout=120, ok=lambda s: s < 500)
            for worker in workers:
                wait_for(
                    lambda w=worker: w.check_alive() or " ready." in w.tail(100_000),
                    timeout=120,
                    what=f"{worker.name} to be ready",
                )

            # Two specs posted at once: each worker trains one, both register a version.
            data = make_data(tmp_path / "data", 1500)
            csv_data = tmp_path / "data" / "rows.csv"
            import pandas as pd

            pd.read_csv(data).to_csv(csv_data, index=False)
            # One spec through the API (as a service would), one with `loopml submit` from a
            # client machine; each worker trains one, both register a version.
            status, body = http(
                "POST", f"{api_url}/jobs", {"spec": _spec(data, "dt")}, headers=AUTH
            )
            assert status == 202, body
            job_ids = [body["id"]]
            client = tmp_path / "client"
            client.mkdir()
            spec_file = client / "lr.json"
            spec_file.write_text(_spec(data, "lr"))
            submitted = run_cli(client, ["submit", str(spec_file)], env)
            assert submitted.returncode == 0, submitted.stdout + submitted.stderr
            queued = re.search(r"job (\w+) queued", submitted.stdout)
            assert queued, submitted.stdout
            job_ids.append(queued.group(1))
            store = JobStore(meta_db)
            try:
                finished = [
                    wait_for(
                        lambda job_id=job_id: (job := store.get(job_id)).finished and job,
                        timeout=300,
                        what=f"job {job_id}",
                    )
                    for job_id in job_ids
                ]
            finally:
                store.close()
            assert [job.status for job in finished] == ["succeeded", "succeeded"], [
                (job.status, job.error) for job in finished
            ]
            assert len({job.worker for job in finished}) == 2, "each worker should train one"
            versions = sorted(v["version"] for v in _versions(tracking))
            assert versions == ["1", "2"], versions
            champion = _aliases(tracking)["champion"]
            other = next(v for v in versions if v != champion)

            # At once, as in the compose file: the model server and the scheduled monitor load
            # the champion from the tracking server (artifacts proxied), and a client machine
            # scores a file on the inference workers.
            serve_port = free_port()
            serve = start(
                loopml(
                    "serve",
                    tmp_path / "serve",
                    ["serve", "--model", f"{MODEL}@champion", "--port", str(serve_port)],
                    env,
                )
            )
            monitor = start(
                loopml(
                    "monitor",
                    tmp_path / "monitor",
                    ["monitor", MODEL, "--every", "2", "--window", "100", "--no-retrain"],
                    env,
                )
            )
            rows = _feature_rows(csv_data, 120)
            batch_in, batch_out = client / "batch.csv", client / "scored.csv"
            with batch_in.open("w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(_feature_rows(csv_data, 300))
            batch_args = ["predict-batch", "--model", f"{MODEL}@champion", "--queue"]
            batch_args += ["--input", str(batch_in), "--output", str(batch_out)]
            batch_args += ["--batch-rows", "100", "--timeout", "240"]
            batch = start(loopml("batch", client, batch_args, env))

            serve_url = f"http://127.0.0.1:{serve_port}"
            wait_http(f"{serve_url}/v2/health/ready", serve, timeout=180, ok=lambda s: s == 200)
            status, body = http("POST", f"{serve_url}/predict", rows, headers=AUTH)
            assert status == 200, body
            assert body["model"]["version"] == champion
            assert len(body["predictions"]) == len(rows)
            status, _ = http("POST", f"{serve_url}/predict", rows)
            assert status == 401, "the model server must refuse a request without the key"

            assert batch.process is not None
            assert batch.process.wait(timeout=300) == 0, batch.tail()
            with batch_out.open() as file:
                assert len(list(csv.DictReader(file))) == 300
            # The server logs its predictions in the background: wait for them, then count.
            # online rows in SQL, batch-scored ones as segments (one batch_segments row each)
            wait_for(
                lambda: _logged(meta_db) >= 120 + 300,
                timeout=120,
                what="every prediction in the log",
            )
            assert _count(meta_db, "SELECT coalesce(sum(rows), 0) FROM batch_segments") == 300
            logged = _logged(meta_db)
            assert logged == 120 + 300, logged

            # The scheduled monitor checks the log's windows, reference from the champion.
            wait_for(
                lambda: (
                    monitor.check_alive()
                    or _count(
                        meta_db,
                        "SELECT count(DISTINCT window_index) FROM monitor_checks "
                        f"WHERE model_name = '{MODEL}' AND complete",
                    )
                    >= 4
                ),
                timeout=180,
                what="the monitor's checks of four complete windows",
            )

            # Promote the other version; the server follows the alias without a restart.
            promoted = run_cli(client, ["models", "promote", MODEL, other], env)
            assert promoted.returncode == 0, promoted.stdout + promoted.stderr

            def serving_other() -> bool:
                status, body = http("POST", f"{serve_url}/predict", rows[:5], headers=AUTH)
                assert status == 200, body
                return bool(body["model"]["version"] == other)

            wait_for(serving_other, timeout=120, what=f"the server to swap to version {other}")
            serve.check_alive()
            assert _aliases(tracking)["champion"] == other

            # What the tracking server and the bucket hold.
            registered = _registered(tracking)
            assert {"alias": "champion", "version": other} in registered["aliases"]
            assert {"alias": "previous", "version": champion} in registered["aliases"]
            keys = s3_keys(s3_endpoint)
            for version in _versions(tracking):
                model_id = version["source"].removeprefix("models:/")
                assert model_id.startswith("m-"), version["source"]
                stored = [k for k in keys if f"/models/{model_id}/artifacts/" in k]
                assert any(k.endswith("/MLmodel") for k in stored), (model_id, keys[:20])
                assert any(k.endswith(".pkl") for k in stored), stored
            status, body = http(
                "GET",
                f"{tracking}/api/2.0/mlflow/experiments/get-by-name?"
                + urllib.parse.urlencode({"experiment_name": f"exp-{MODEL}"}),
            )
            assert status == 200, body
            assert body["experiment"]["artifact_location"].startswith("mlflow-artifacts:"), body

            # Nothing of a model on local disk: loopml's artifact roots stay empty, no
            # mlruns anywhere, and no MLmodel outside the S3 server's and the services'
            # own temp folders.
            for service in services:
                if service is not batch:
                    service.check_alive()
            loopml_folders = [tmp_path / n for n in ("api", "worker0", "worker1", "serve")]
            for folder in [*loopml_folders, tmp_path / "monitor", client]:
                artifacts = folder / "home" / "artifacts"
                assert not artifacts.exists() or not any(artifacts.iterdir()), artifacts
            everything = files_under(tmp_path, skip=[tmp_path / "s3"])
            assert not [p for p in everything if "mlruns" in p.parts or "mlartifacts" in p.parts]
            kept = [p for p in everything if p.name == "MLmodel" and "tmp" not in p.parts]
            assert not kept, kept
            assert sorted(p.name for p in files_under(client, skip=[client / "tmp"])) == [
                "batch.csv",
                "batch.log",
                "lr.json",
                "scored.csv",
            ]
        finally:
            for service in reversed(services):
                service.stop()
            delete_topology(prefix)
            time.sleep(0.5)  # let PostgreSQL see the services' connections close
