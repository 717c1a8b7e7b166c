"""Malformed messages at every layer, as raw bytes and headers, shared by the broker tests.

Each case says which job row must end ``rejected`` (when an id can be
recovered from the message) and a fragment the recorded reason must hold.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.queue.topology import SCORE_TASK, TRAIN_TASK, TUNE_TASK
from tests.queue.helpers import protocol_headers, task_body

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
BAD_SPEC = "pipeline: [unclosed"


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    headers: dict[str, Any]
    reason: str
    queue: str = "training"
    job_id: str | None = None
    content_type: str | None = "application/json"
    content_encoding: str | None = "utf-8"
    correlation_id: str | None = None
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    by_task: bool = False
    """Admitted by the consumer, refused by the task in a pool process (same dead letter)."""


class _Explode:
    """Unpickling this runs a shell command: the proof that pickle is never loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _id() -> str:
    return uuid.uuid4().hex


def _train(job_id: str, **extra: Any) -> dict[str, Any]:
    return {"job_id": job_id, "spec": "{}", "source": None, **extra}


def cases(marker: Path) -> list[Case]:
    """Every malformed kind; ``marker`` is a file that must never be created."""
    out: list[Case] = []

    def add(name: str, body: bytes, reason: str, *, job: str | None, **kw: Any) -> None:
        headers = kw.pop("headers", None)
        task = kw.pop("task", TRAIN_TASK)
        if headers is None:
            headers = protocol_headers(task, job)
        out.append(Case(name, body, headers, reason, job_id=job, **kw))

    j = _id()
    add("hello", json.dumps({"hello": 1}).encode(), "must be a JSON array", job=j)
    j = _id()
    add("wrong arity", json.dumps([[], _train(j)]).encode(), "a list of 2", job=j)
    j = _id()
    add("bad json", b"{this is not json", "not valid UTF-8 JSON", job=j)
    j = _id()
    utf16 = json.dumps([[], _train(j), EMBED]).encode("utf-16")
    add("utf-16", utf16, "content encoding 'utf-16'", job=j, content_encoding="utf-16")
    j = _id()
    add("binary garbage", b"\xff\xfe\x00garbage\x80\x81", "not valid UTF-8 JSON", job=j)
    j = _id()
    add(
        "unknown task",
        task_body(_train(j)),
        "unknown task 'loopml.nope'",
        job=j,
        task="loopml.nope",
    )
    j = _id()
    add(
        "pickle",
        pickle.dumps(_Explode(marker)),
        "content type 'application/x-python-serialize'",
        job=j,
        content_type="application/x-python-serialize",
        content_encoding="binary",
    )
    j = _id()
    add(
        "yaml",
        b"- []\n- {}\n- {}\n",
        "content type 'application/x-yaml'",
        job=j,
        content_type="application/x-yaml",
    )
    j = _id()
    add("no content type", task_body(_train(j)), "content type None", job=j, content_type=None)
    j = _id()
    add(
        "kwargs not a dict",
        json.dumps([[], "job", EMBED]).encode(),
        "kwargs must be an object",
        job=j,
    )
    j = _id()
    add(
        "args not a list",
        json.dumps([{"a": 1}, _train(j), EMBED]).encode(),
        "args must be an array",
        job=j,
    )
    j = _id()
    add(
        "positional args",
        json.dumps([[1], _train(j), EMBED]).encode(),
        "positional arguments",
        job=j,
    )
    j = _id()
    add(
        "embed with callbacks",
        json.dumps([[], _train(j), {**EMBED, "callbacks": [{"task": TRAIN_TASK}]}]).encode(),
        "embed must hold only nulls",
        job=j,
    )
    j = _id()
    add(
        "embed not a dict",
        json.dumps([[], _train(j), [1, 2]]).encode(),
        "embed must be an object",
        job=j,
    )
    j = _id()
    headers = protocol_headers(TRAIN_TASK, None)
    add("missing id header", task_body(_train(j)), "id: Field required", job=j, headers=headers)
    j = _id()
    headers = protocol_headers(TRAIN_TASK, None)
    add(
        "missing id, correlation id only",
        b"[",
        "not valid UTF-8 JSON",
        job=j,
        headers=headers,
        correlation_id=j,
    )
    headers = {"lang": "py", "id": _id()}
    add(
        "no task header (protocol 1)",
        json.dumps({"task": TRAIN_TASK}).encode(),
        "no 'task' header",
        job=headers["id"],
        headers=headers,
    )
    j = _id()
    headers = {**protocol_headers(TRAIN_TASK, j), "retries": "many", "timelimit": "soon"}
    add("odd header types", task_body(_train(j)), "bad headers", job=j, headers=headers)
    j = _id()
    headers = {**protocol_headers(TRAIN_TASK, j), "argsrepr": ["not", "text"]}
    add("argsrepr not text", task_body(_train(j)), "argsrepr", job=j, headers=headers)
    j = _id()
    headers = {**protocol_headers(TRAIN_TASK, j), "eta": "2030-01-01T00:00:00"}
    add("eta", task_body(_train(j)), "eta", job=j, headers=headers)
    j = _id()
    headers = {**protocol_headers(TRAIN_TASK, j), "callbacks": [{"task": TRAIN_TASK}]}
    add("callbacks header", task_body(_train(j)), "callbacks", job=j, headers=headers)
    j = _id()
    headers = {**protocol_headers(TRAIN_TASK, j), "compression": "application/x-gzip"}
    add(
        "compressed",
        gzip.compress(task_body(_train(j))),
        "compressed messages",
        job=j,
        headers=headers,
    )
    j, k = _id(), _id()
    add(
        "id header differs",
        task_body(_train(k)),
        "differs from kwargs.job_id",
        job=k,
        headers=protocol_headers(TRAIN_TASK, j),
    )
    j = _id()
    add("missing spec", task_body({"job_id": j}), "spec: Field required", job=j)
    j = _id()
    add("spec not text", task_body({"job_id": j, "spec": {"pipeline": []}}), "spec", job=j)
    j = _id()
    add(
        "spec does not parse",
        task_body(_train(j, spec=BAD_SPEC)),
        "not valid YAML",
        job=j,
        by_task=True,
    )
    j = _id()
    batch = {"job_id": j, "batch_id": j, "model": "m@champion", "columns": "a", "rows": 3}
    add(
        "batch with bad fields",
        task_body(batch),
        "columns",
        job=j,
        task=SCORE_TASK,
        queue="inference",
    )
    j = _id()
    add(
        "batch body a dict",
        json.dumps({"rows": []}).encode(),
        "must be a JSON array",
        job=j,
        task=SCORE_TASK,
        queue="inference",
    )
    j = _id()
    headers = {**protocol_headers(TRAIN_TASK, j), "expires": "2001-01-01T00:00:00"}
    add("expired", task_body(_train(j)), "expires", job=j, headers=headers)
    j = _id()
    add(
        "training job on the inference queue",
        task_body(_train(j)),
        "belongs on",
        job=j,
        queue="inference",
    )
    out.extend(_trial_cases())
    return out


def _trial(job_id: str, **extra: Any) -> dict[str, Any]:
    return {"job_id": job_id, "estimator": "rf", "ticket": f"{job_id}-rf-0", **extra}


def _trial_cases() -> list[Case]:
    """Malformed ``loopml.tune_trials`` messages: refused, and no job row is touched.

    A trial message names a job it does not own (anyone may publish one), so
    refusing it never marks that job: each case's ``job_id`` is None.
    """
    out: list[Case] = []

    def add(name: str, kwargs: Any, reason: str, *, body: bytes | None = None, **kw: Any) -> None:
        ticket = kw.pop("ticket", None) or (kwargs or {}).get("ticket") or _id()
        headers = protocol_headers(TUNE_TASK, str(ticket))
        out.append(Case(name, body or task_body(kwargs), headers, reason, **kw))

    j = _id()
    add(
        "trial body a plain object",
        _trial(j),
        "must be a JSON array",
        body=json.dumps(_trial(j)).encode(),
    )
    j = _id()
    wrong = {"job_id": [j], "estimator": 5, "ticket": f"{j}-rf-0"}
    add("trial with wrong types", wrong, "estimator: Input should be a valid string")
    j = _id()
    add("trial asking for huge n_trials", _trial(j, n_trials=10**12), "n_trials: Extra inputs")
    j = _id()
    add("trial with negative numbers", _trial(j, n_iter=-5, timeout=-1), "n_iter: Extra inputs")
    j = _id()
    add("trial with a negative ticket", _trial(j, ticket=f"{j}-rf--1"), "not of this study")
    j, k = _id(), _id()
    add(
        "trial with a forged id header", _trial(j), "differs from kwargs.ticket", ticket=f"{k}-rf-0"
    )
    j, k = _id(), _id()
    add("trial naming another job's study", _trial(j, ticket=f"{k}-rf-0"), "not of this study")
    j = _id()
    add("trial with a study name", _trial(j, study="loopml-x-rf"), "study: Extra inputs")
    j = _id()
    add(
        "trial for a job that does not exist",
        _trial(j),
        f"no training job {j} is recorded",
        by_task=True,
    )
    return out
