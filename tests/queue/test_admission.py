"""The admission check on its own: what loopml's clients send passes, nothing else does.

No broker here: kombu messages are built in memory, so every layer can be
attacked quickly, including shapes no broker client would let through.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from kombu.message import Message

from loopml.core.settings import Settings
from loopml.queue import make_app
from loopml.queue.admission import DELIVERIES_HEADER, examine
from loopml.queue.topology import SCORE_TASK, TRAIN_TASK
from tests.queue.helpers import protocol_headers, task_body
from tests.queue.poison_cases import cases

LIMITS = {TRAIN_TASK: 100.0}
QUEUES = {TRAIN_TASK: "training", SCORE_TASK: "inference"}


def _message(
    body: Any,
    headers: Any,
    *,
    content_type: Any = "application/json",
    content_encoding: Any = "utf-8",
    properties: dict[str, Any] | None = None,
    queue: str = "training",
) -> Message:
    message = Message(
        body=body,
        content_type=content_type,
        content_encoding=content_encoding,
        headers={},
        properties=properties or {},
        delivery_info={"routing_key": queue, "redelivered": False},
    )
    message.headers = headers  # any shape: kombu's constructor would refuse some
    return message


def _celery_message(task: str, task_id: str, kwargs: dict[str, Any]) -> Message:
    """Exactly what ``app.send_task`` (loopml submit, predict-batch --queue) publishes."""
    app = make_app(Settings(home=Path(tempfile.mkdtemp())))
    sent = app.amqp.as_task_v2(task_id, task, kwargs=kwargs)
    return _message(json.dumps(sent.body).encode(), sent.headers, properties=sent.properties)


def test_the_messages_loopml_clients_send_are_admitted() -> None:
    training = _celery_message(TRAIN_TASK, "a" * 32, {"job_id": "a" * 32, "spec": "{}"})
    verdict = examine(training, LIMITS)
    assert verdict.reason is None and verdict.job_id == "a" * 32 and verdict.kind == "training"
    batch = {"job_id": "b" * 32, "batch_id": f"{'b' * 32}-000001", "model": "m/1"}
    scoring = _celery_message(
        SCORE_TASK, batch["batch_id"], {**batch, "columns": ["x"], "rows": []}
    )
    scoring.delivery_info["routing_key"] = "inference"
    verdict = examine(scoring, LIMITS, QUEUES)
    assert verdict.reason is None and verdict.job_id == "b" * 32 and verdict.kind == "batch"
    raw = _message(task_body({"job_id": "c1", "spec": "{}"}), protocol_headers(TRAIN_TASK, "c1"))
    assert examine(raw, LIMITS).reason is None  # the documented hand-written contract
    counted = {**protocol_headers(TRAIN_TASK, "c1"), DELIVERIES_HEADER: 2, "x-death": [{}]}
    verdict = examine(_message(task_body({"job_id": "c1", "spec": "{}"}), counted), LIMITS)
    assert verdict.reason is None and verdict.deliveries == 2  # broker headers are fine


@pytest.mark.parametrize("case", cases(Path("/nonexistent/marker")), ids=lambda case: case.name)
def test_every_malformed_kind_is_refused_with_its_reason(case: Any) -> None:
    message = _message(
        case.body,
        case.headers,
        content_type=case.content_type,
        content_encoding=case.content_encoding,
        properties={"correlation_id": case.correlation_id} if case.correlation_id else None,
        queue=case.queue,
    )
    verdict = examine(message, LIMITS, QUEUES)
    if case.by_task:  # the task's job, in a pool process
        assert verdict.reason is None
        return
    assert verdict.reason is not None and case.reason in verdict.reason
    assert verdict.job_id == case.job_id


@pytest.mark.parametrize(
    ("timelimit", "admitted"),
    [(None, True), ([None, None], True), ([50, 40], True), ([500, None], False), ([1], False)],
)
def test_a_time_limit_may_shorten_a_task_never_extend_it(timelimit: Any, admitted: bool) -> None:
    headers = {**protocol_headers(TRAIN_TASK, "t1"), "timelimit": timelimit}
    verdict = examine(_message(task_body({"job_id": "t1", "spec": "{}"}), headers), LIMITS)
    assert (verdict.reason is None) is admitted, verdict.reason


def test_examine_never_raises_on_random_garbage() -> None:
    rng = random.Random(11)
    atoms: list[Any] = [None, 0, -1, 1.5, True, "", "x", b"\xff", [], {}, TRAIN_TASK, "a" * 40]

    def value(depth: int = 0) -> Any:
        pick = rng.random()
        if depth < 3 and pick < 0.2:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        if depth < 3 and pick < 0.4:
            return {rng.choice(["task", "id", "eta", "x", 1]): value(depth + 1) for _ in range(3)}
        return rng.choice(atoms)

    for _ in range(3000):
        headers = (
            value() if rng.random() < 0.3 else {**protocol_headers(TRAIN_TASK, "g1"), "x": value()}
        )
        body: Any = rng.choice(
            [json.dumps(value(), default=str).encode(), rng.randbytes(rng.randint(0, 40)), value()]
        )
        message = _message(
            body,
            headers,
            content_type=rng.choice(["application/json", None, "application/x-yaml", 3]),
            content_encoding=rng.choice(["utf-8", "UTF8", None, "latin-1", b"utf-8"]),
        )
        verdict = examine(message, LIMITS)  # must not raise
        if verdict.reason is None:  # then it is exactly a loopml training message
            decoded = json.loads(bytes(body))
            assert decoded[0] == [] and isinstance(decoded[1], dict)


def test_trial_tasks_are_admitted_like_every_task_and_never_charge_the_job() -> None:
    from loopml.queue.topology import TUNE_TASK

    queues = {**QUEUES, TUNE_TASK: "training"}
    ticket = f"{'b' * 32}-rf-0"
    good = {"job_id": "b" * 32, "estimator": "rf", "ticket": ticket}
    verdict = examine(_celery_message(TUNE_TASK, ticket, good), LIMITS, queues)
    assert verdict.reason is None and verdict.kind == "tuning"
    assert verdict.job_id is None  # a refused trial message must not end the job it names

    for kwargs, task_id, expected in [
        ({**good, "estimator": "RF; rm"}, ticket, "estimator"),
        ({**good, "extra": 1}, ticket, "extra"),
        ({**good, "job_id": "../x"}, ticket, "job_id"),
        (good, "other-ticket", "differs from kwargs.ticket"),
    ]:
        verdict = examine(_celery_message(TUNE_TASK, task_id, kwargs), LIMITS, queues)
        assert verdict.reason is not None and expected in verdict.reason, verdict.reason
        assert verdict.job_id is None
    on_inference = _celery_message(TUNE_TASK, ticket, good)
    on_inference.delivery_info["routing_key"] = "inference"
    assert "belongs on 'training'" in (examine(on_inference, LIMITS, queues).reason or "")
