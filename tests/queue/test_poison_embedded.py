"""The same malformed messages on the embedded broker (kombu's SQLAlchemy transport on SQLite).

kombu's virtual transports drop a rejected message; loopml's embedded
transport moves it to the dead-letter queue instead, and moves a stored row
that is not a kombu envelope at all there too, rather than raising inside the
receive loop. One real worker; counted: the worker alive, dead-letter rows by
message id with their reasons, ``rejected`` job rows, a valid job after.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.queue import make_app
from loopml.queue.topology import TRAIN_TASK, Topology
from loopml.store.jobs import JobStore
from tests.queue.conftest import init_stores
from tests.queue.helpers import (
    Worker,
    make_data,
    protocol_headers,
    task_body,
    wait_for,
    wait_job_finished,
    write_spec,
)
from tests.queue.poison_cases import Case, cases

pytestmark = pytest.mark.timeout(300)


def _publish(app: Any, queue: str, case: Case | None = None, **raw: Any) -> None:
    """Publish through the transport's own channel API: bytes and properties as given."""
    fields = raw or {
        "body": case.body,  # type: ignore[union-attr]
        "headers": case.headers,  # type: ignore[union-attr]
        "content_type": case.content_type,  # type: ignore[union-attr]
        "content_encoding": case.content_encoding,  # type: ignore[union-attr]
        "properties": {
            "correlation_id": case.correlation_id,  # type: ignore[union-attr]
            "message_id": case.tag,  # type: ignore[union-attr]
        },
    }
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        channel.basic_publish(channel.prepare_message(**fields), exchange="", routing_key=queue)


def _dead_letters(broker: Path, name: str) -> list[dict[str, Any]]:
    """The dead-letter queue's rows, each as its stored envelope (or its raw text)."""
    with sqlite3.connect(broker) as db:
        rows = db.execute(
            "SELECT m.payload FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id "
            "WHERE q.name = ? AND m.visible",
            (name,),
        ).fetchall()
    out = []
    for (payload,) in rows:
        try:
            out.append(json.loads(payload))
        except ValueError:
            out.append({"raw": payload})
    return out


def _insert_garbage_row(broker: Path, queue: str, payload: str) -> None:
    with sqlite3.connect(broker) as db:
        (queue_id,) = db.execute("SELECT id FROM kombu_queue WHERE name = ?", (queue,)).fetchone()
        db.execute(
            "INSERT INTO kombu_message (visible, timestamp, payload, version, queue_id) "
            "VALUES (1, CURRENT_TIMESTAMP, ?, 1, ?)",
            (payload, queue_id),
        )


def test_embedded_broker_dead_letters_every_malformed_message_and_keeps_consuming(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "home", queue_prefix="p.")
    init_stores(settings)
    topology = Topology.from_settings(settings)
    app = make_app(settings)
    broker = settings.home / "broker.db"
    worker = Worker(settings, tmp_path / "worker.log", "training,inference")
    try:
        worker.wait_ready()
        pid = worker.process.pid
        marker = tmp_path / "unpickled"
        poison = cases(marker)
        for case in poison:
            _publish(app, topology.queue_for(case.queue), case)
        garbage = ["not json at all", json.dumps([1, 2, 3]), json.dumps({"properties": {}})]
        for payload in garbage:
            _insert_garbage_row(broker, topology.training, payload)
        valid = uuid.uuid4().hex
        spec = write_spec(tmp_path, make_data(tmp_path, 300), f"emb_{valid[:6]}", register=False)
        _publish(
            app,
            topology.training,
            body=task_body({"job_id": valid, "spec": spec.read_text(), "source": str(spec)}),
            headers=protocol_headers(TRAIN_TASK, valid),
            content_type="application/json",
            content_encoding="utf-8",
            properties={"correlation_id": valid},
        )
        jobs = JobStore(settings.database)
        try:
            job = wait_job_finished(jobs, valid, what="the valid job after the poison")
            assert job.status == Status.SUCCEEDED, job.error
            letters = wait_for(
                lambda: (
                    (found := _dead_letters(broker, topology.dead_letters))
                    and len(found) >= len(poison) + len(garbage)
                    and found
                ),
                timeout=60,
                what="every dead letter",
            )
            rows = {case.name: jobs.find(case.job_id) for case in poison if case.job_id}
        finally:
            jobs.close()
        assert worker.alive and worker.process.pid == pid, worker.log.read_text()[-3000:]
        assert "Unrecoverable error" not in worker.log.read_text(errors="replace")
        assert not marker.exists(), "a pickle body was deserialized"
    finally:
        worker.stop()

    assert len(letters) == len(poison) + len(garbage)
    raw = sorted(letter["raw"] for letter in letters if "raw" in letter)
    assert raw == ["not json at all"]  # moved as it was stored
    stored = [letter for letter in letters if "raw" not in letter]
    assert sum(1 for letter in stored if letter in ([1, 2, 3], {"properties": {}})) == 2
    by_tag = {
        letter["properties"].get("message_id"): letter
        for letter in stored
        if isinstance(letter, dict) and isinstance(letter.get("properties"), dict)
    }
    problems = []
    for case in poison:
        letter = by_tag.get(case.tag)
        if letter is None:
            problems.append(f"{case.name}: no dead letter")
            continue
        reason = str((letter.get("headers") or {}).get("x-loopml-reason", ""))
        if not reason or case.reason not in reason:
            problems.append(f"{case.name}: reason {reason!r} lacks {case.reason!r}")
        if base64.b64decode(letter["body"]) != case.body:
            problems.append(f"{case.name}: the dead letter's body is not the message's")
        row = rows.get(case.name)
        if case.job_id and (
            row is None or row.status != Status.REJECTED or case.reason not in row.error
        ):
            problems.append(f"{case.name}: job row {row and (row.status, row.error)}")
    assert not problems, "\n".join(problems)
