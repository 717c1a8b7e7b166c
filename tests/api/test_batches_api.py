"""``POST /batches`` end to end with the embedded broker: a real ``loopml worker`` scores the file.

uvicorn serves the API on a free port; the worker process consumes the
training queue of the SQLite broker in ``$LOOPML_HOME``, runs the engine the
order names through ``get_engine`` and logs every chunk in the batch log. The
test counts every row by its prediction id, in the scored file and in the one
prediction log (SQL and segments), and finds each exactly once.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopml.batch.scoring import batch_id, prediction_id
from loopml.core.settings import Settings
from loopml.core.status import FINISHED
from loopml.store.predictions import PredictionLog
from tests.api.conftest import KEY, api_client, running_api
from tests.queue.helpers import Worker, wait_for
from tests.registry import small

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
ROWS, CHUNK = 2_500, 1_000


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> Settings:
    folder = tmp_path_factory.mktemp("batch-api")
    # the session's MLflow store (its schema takes seconds to create); batch roots: home/data
    configured = Settings(home=folder / "home", api_keys=[KEY], tracking_uri=tracking_uri)
    (configured.home / "data").mkdir(parents=True)
    return configured


@pytest.fixture(scope="module")
def rows(settings: Settings) -> tuple[Path, pd.DataFrame]:
    frame = small.frame(ROWS, seed=21)  # three columns of distinct floats
    path = settings.home / "data" / "rows.parquet"
    frame.to_parquet(path)
    return path, frame


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[str]:
    with running_api(settings) as url:
        yield url


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[tuple[Worker, str]]:
    """A ``loopml worker`` (two processes) and a registered model (``NAME``, version 1).

    The model is logged while the worker starts: both take seconds.
    """
    started = Worker(
        settings, settings.home.parent / "worker.log", "training,inference", concurrency=2
    )
    try:
        name = small.new_name()
        assert small.register_with_loopml(settings, name) == "1"
        started.wait_ready()
        yield started, name
    finally:
        started.kill()  # every job has ended: nothing to wait for


def _finished(client: Any, job_id: str) -> dict[str, Any]:
    def poll() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/batches/{job_id}").json()
        return body if body["status"] in FINISHED else None

    found: dict[str, Any] = wait_for(poll, timeout=240, interval=0.3, what=f"batch {job_id}")
    return found


def test_batches_queued_over_http_score_every_row_once(
    api: str,
    settings: Settings,
    rows: tuple[Path, pd.DataFrame],
    stack: tuple[Worker, str],
) -> None:
    worker, model = stack
    source, frame = rows
    folder = settings.home / "data" / "out"
    folder.mkdir()
    targets = {"local": folder / "local.csv", "queue": folder / "queue.parquet"}
    with api_client(api) as client:
        submitted = {}
        for engine, target in targets.items():  # both at once: the worker has two processes
            answer = client.post(
                "/batches",
                json={
                    "model": f"{model}/1",
                    "input": str(source),
                    "output": str(target),
                    "engine": engine,
                    "batch_rows": CHUNK,
                },
            )
            assert answer.status_code == 202, answer.text
            assert answer.json()["batch"]["engine"] == engine
            submitted[engine] = answer.json()["id"]
        for engine, job_id in submitted.items():
            final = _finished(client, job_id)
            assert final["status"] == "succeeded", (engine, final["error"])
            assert final["kind"] == "batch"
            assert final["worker"].startswith(worker.hostname_prefix)
            assert final["attempts"] == 1  # the queue engine does not count a second one
            batch = final["batch"]
            assert (batch["chunks_done"], batch["chunks_total"]) == (3, 3)
            assert batch["rows_scored"] == ROWS and batch["version"] == "1"
        listed = [job["id"] for job in client.get("/jobs").json()["jobs"]]
        assert set(submitted.values()) <= set(listed)
    for engine, job_id in submitted.items():
        _every_id_once(settings, model, job_id, targets[engine], frame)


def _every_id_once(
    settings: Settings, model: str, job_id: str, target: Path, frame: pd.DataFrame
) -> None:
    """Each prediction id of the job once in the prediction log and once in the scored file."""
    expected = [
        prediction_id(batch_id(job_id, chunk), row)
        for chunk in range(3)
        for row in range(min(CHUNK, ROWS - chunk * CHUNK))
    ]
    log = PredictionLog.open(settings.database)
    try:
        logged = pd.concat(list(log.frames(model)))
    finally:
        log.engine.dispose()
    logged = logged[logged["prediction_id"].isin(set(expected))]
    assert Counter(logged["prediction_id"]) == Counter(expected)  # every id once in the log
    # the scored file carries no ids: each row is matched to its logged id by its inputs
    ids = {(r.a, r.b, r.c): r.prediction_id for r in logged.itertuples()}
    assert len(ids) == ROWS
    if target.suffix == ".csv":
        scored = pd.read_csv(target, engine="pyarrow")
    else:
        scored = pd.read_parquet(target)
    found = [ids[(r.a, r.b, r.c)] for r in scored.itertuples()]
    assert Counter(found) == Counter(expected), target  # every id once in the file
    predicted = dict(zip(logged["prediction_id"], logged["prediction"], strict=True))
    assert [predicted[i] for i in found] == scored["prediction"].tolist()
    assert scored["c"].tolist() == frame["c"].tolist()  # in the input's order


def test_the_worker_checks_the_paths_again(
    settings: Settings, rows: tuple[Path, pd.DataFrame], stack: tuple[Worker, str]
) -> None:
    """A message that did not come through the API is held to the batch roots by the worker."""
    from loopml.queue import make_app
    from loopml.queue.submit import publish
    from loopml.queue.topology import BATCH_JOB_TASK
    from loopml.store.jobs import BATCH, JobStore

    outside = settings.home.parent / "outside.parquet"
    rows[1].to_parquet(outside)
    target = settings.home / "data" / "stolen.csv"
    job_id = uuid.uuid4().hex
    order = {
        "job_id": job_id,
        "model": f"{stack[1]}/1",
        "input": str(outside),
        "output": str(target),
        "engine": "local",
        "batch_rows": CHUNK,
    }
    app = make_app(settings)
    jobs = JobStore(settings.database)
    try:
        jobs.create(job_id, kind=BATCH, queue=app.loopml_topology.training)
        publish(app, BATCH_JOB_TASK, job_id, order)
        job = wait_for(
            lambda: (found := jobs.get(job_id)).finished and found, timeout=120, what="refusal"
        )
    finally:
        jobs.close()
    assert job.status == "rejected", job
    assert "LOOPML_BATCH_ROOTS" in job.error and str(settings.home / "data") in job.error
    assert not target.exists()
    log = PredictionLog.open(settings.database)
    try:
        assert log.count(batch_id=batch_id(job_id, 0)) == 0
    finally:
        log.engine.dispose()


def test_a_failed_batch_says_why_without_quoting_the_file(
    api: str, settings: Settings, stack: tuple[Worker, str]
) -> None:
    secret = "pa55-word-in-a-cell"
    source = settings.home / "data" / "strings.csv"
    source.write_text(f"a,b,c\n1.0,2.0,3.0\n{secret},2.0,3.0\n")
    with api_client(api) as client:
        answer = client.post(
            "/batches",
            json={
                "model": f"{stack[1]}/1",
                "input": str(source),
                "output": str(settings.home / "data" / "never.csv"),
            },
        )
        assert answer.status_code == 202, answer.text
        final = _finished(client, answer.json()["id"])
        shown = client.get(f"/jobs/{final['id']}").text
    assert final["status"] == "failed"
    assert "non-numeric value(s) in a (double, 1 such rows)" in final["error"]  # what, where
    assert secret not in final["error"] and secret not in shown
    assert final["batch"]["rows_scored"] == 0  # nothing of it stays in the log
    assert not (settings.home / "data" / "never.csv").exists()
