"""Admission: a delivery is checked, as the broker handed it over, before Celery parses it.

Celery's consumer trusts the shape of what it receives: a body that is not
``[args, kwargs, embed]`` raises ``ValueError`` while it builds its request,
in the worker's main process, and the worker stops (``Unrecoverable error``).
A header of the wrong type does the same a few lines later; a ``callbacks``
header or embed makes a worker publish tasks on a stranger's behalf. So every
delivery of a loopml queue passes :func:`examine` first, which accepts exactly
the protocol-v2 messages loopml's own clients send (``docs/workers.md``):

- content type ``application/json`` and encoding UTF-8 only: pickle, YAML,
  msgpack and anything unknown are never deserialized; compressed bodies are
  never decompressed (:mod:`loopml.queue.transport`);
- headers: ``task`` one of loopml's tasks, ``id`` a string, Celery's other
  headers with the types Celery expects (no ETA or expiry, no group, no stamps, a time
  limit no longer than the task's own), broker headers (``x-...``) allowed,
  anything else refused;
- body: a JSON array ``[[], {kwargs}, embed]`` with an embed of nulls;
- kwargs: the task's message model (:mod:`loopml.queue.messages`), with the
  ``id`` header equal to the job id (training), the batch id (scoring) or the
  ticket (tuning trials; a refused trial message never marks the job it names).

What it refuses is dead-lettered with the reason by :class:`loopml.queue.consumer`.
The spec inside a training message is checked later, by the task in a pool
process (parsing an arbitrary spec must not stall the consumer's heartbeat);
a spec that does not parse is dead-lettered from there, through the same path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kombu import serialization
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loopml.core.errors import MessageError
from loopml.queue.messages import (
    JOB_ID_PATTERN,
    BatchJobMessage,
    BatchMessage,
    TrainingMessage,
    TrialMessage,
    parse_message,
)
from loopml.queue.topology import BATCH_JOB_TASK, SCORE_TASK, TRAIN_TASK, TUNE_TASK

JSON = "application/json"
UTF8 = frozenset({"utf-8", "utf8"})
EMBED_KEYS = frozenset({"callbacks", "errbacks", "chain", "chord"})
MESSAGES: dict[str, type[BaseModel]] = {
    TRAIN_TASK: TrainingMessage,
    SCORE_TASK: BatchMessage,
    TUNE_TASK: TrialMessage,
    BATCH_JOB_TASK: BatchJobMessage,
}
KINDS = {TRAIN_TASK: "training", SCORE_TASK: "batch", TUNE_TASK: "tuning", BATCH_JOB_TASK: "batch"}
#: The kwargs field the ``id`` header must equal, per task.
OWN_IDS = {
    TRAIN_TASK: "job_id",
    SCORE_TASK: "batch_id",
    TUNE_TASK: "ticket",
    BATCH_JOB_TASK: "job_id",
}
#: Header loopml adds to a message it republishes: deliveries that ended unacknowledged.
DELIVERIES_HEADER = "x-loopml-deliveries"
_JOB_ID = re.compile(JOB_ID_PATTERN)
_SHOWN = 300
_loads: Any = serialization.loads  # kombu's JSON, exactly as the pool process decodes it


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class CeleryHeaders(BaseModel):
    """The protocol-v2 headers Celery reads, with the types it assumes (strict: no coercion)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    task: str
    id: str = Field(min_length=1, max_length=255)
    lang: str | None = None
    root_id: str | None = Field(default=None, max_length=255)
    parent_id: str | None = Field(default=None, max_length=255)
    shadow: None = None
    eta: None = Field(default=None, description="loopml never schedules a task for later")
    expires: None = Field(default=None, description="an expired task would vanish unrecorded")
    group: None = None
    group_index: None = None
    retries: int = Field(default=0, ge=0)
    timelimit: list[Any] | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    origin: str | None = None
    ignore_result: bool | None = None
    replaced_task_nesting: int | None = Field(default=None, ge=0)
    stamped_headers: list[Any] | None = Field(default=None, max_length=0)
    stamps: dict[str, Any] | None = Field(default=None, max_length=0)

    @field_validator("timelimit")
    @classmethod
    def _pair(cls, value: list[Any] | None) -> list[Any] | None:
        if value is None:
            return None
        if len(value) != 2 or not all(v is None or (_is_number(v) and v > 0) for v in value):
            raise ValueError("must be [hard, soft]: two positive numbers of seconds or nulls")
        return value


@dataclass(frozen=True)
class Verdict:
    """What :func:`examine` found: ``reason`` is None when the message may run."""

    reason: str | None
    task: str | None = None
    job_id: str | None = None
    deliveries: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return KINDS.get(self.task or "", "unknown")


def examine(
    message: Any,
    time_limits: Mapping[str, float] | None = None,
    queues: Mapping[str, str] | None = None,
) -> Verdict:
    """Check a kombu message as delivered; never raises, never deserializes anything but JSON.

    ``time_limits`` maps a task name to its hard limit in seconds: a
    ``timelimit`` header may shorten it, never extend it. ``queues`` maps a
    task name to its queue: a training job on the inference queue (or the
    reverse) would run on workers sized for the other kind, so it is refused.
    """
    headers = getattr(message, "headers", None)
    headers = headers if isinstance(headers, dict) else {}
    task = headers.get("task") if isinstance(headers.get("task"), str) else None
    ids = _candidate_ids(message, headers, {})
    try:
        reason, kwargs = _check(message, headers, time_limits or {})
        reason = reason or _wrong_queue(message, task, queues or {})
    except Exception as error:  # a check that trips over something even stranger
        reason, kwargs = f"the message could not be read: {type(error).__name__}: {error}", {}
    if kwargs:
        ids = _candidate_ids(message, headers, kwargs)
    if task == TUNE_TASK:
        ids = None  # a trial task names a job it does not own: refusing it leaves the job alone
    return Verdict(
        reason=reason,
        task=task,
        job_id=ids,
        deliveries=_deliveries(headers),
        kwargs=kwargs,
    )


def _check(
    message: Any, headers: dict[str, Any], time_limits: Mapping[str, float]
) -> tuple[str | None, dict[str, Any]]:
    problem = getattr(message, "loopml_problem", None)
    if problem:
        return problem, {}
    if getattr(message, "loopml_compression", None) or "compression" in headers:
        return "compressed messages are not accepted (loopml sends plain JSON)", {}
    content_type = message.content_type
    if content_type != JSON:
        return (
            f"content type {_show(content_type)} is not accepted; loopml tasks are "
            f"{JSON!r} (nothing else is ever deserialized)",
            {},
        )
    encoding = message.content_encoding
    if not isinstance(encoding, str) or encoding.lower() not in UTF8:
        return f"content encoding {_show(encoding)} is not accepted; send 'utf-8'", {}
    body = message.body
    if not isinstance(body, bytes | bytearray | memoryview | str):
        return f"the body is {type(body).__name__}, not bytes", {}
    try:
        if not isinstance(body, str):
            bytes(body).decode("utf-8")
        decoded = _loads(body, JSON, "utf-8", accept={JSON})
    except Exception as error:  # kombu's DecodeError, UnicodeDecodeError, RecursionError
        return f"the body is not valid UTF-8 JSON: {_show(str(error))}", {}
    if decoded and hasattr(message, "_decoded_cache"):
        message._decoded_cache = decoded  # kombu's memo: Celery's request reuses it
    kwargs = _kwargs_of(decoded)
    reason = _check_headers(headers, time_limits)
    if reason:
        return reason, kwargs
    return _check_body(headers, decoded)


def _kwargs_of(decoded: Any) -> dict[str, Any]:
    """The kwargs of a body, when it has that much shape (to find the job it names)."""
    if isinstance(decoded, list) and len(decoded) == 3 and isinstance(decoded[1], dict):
        return decoded[1]
    return {}


def _check_headers(headers: dict[str, Any], time_limits: Mapping[str, float]) -> str | None:
    if "task" not in headers:
        return "no 'task' header: loopml accepts Celery's message protocol 2 only"
    task = headers["task"]
    if task not in MESSAGES:
        return f"unknown task {_show(task)}; loopml runs {', '.join(sorted(MESSAGES))}"
    celery = {key: value for key, value in headers.items() if not str(key).startswith("x-")}
    try:
        checked = CeleryHeaders.model_validate(celery)
    except ValidationError as error:
        return "bad headers: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<headers>'}: {e['msg']}"
            for e in error.errors()
        )
    limit = time_limits.get(task)
    timelimit = checked.timelimit or []
    if limit is not None and any(v is not None and v > limit for v in timelimit):
        return f"bad headers: timelimit {checked.timelimit} exceeds the task's {limit} s"
    return None


def _check_body(headers: dict[str, Any], decoded: Any) -> tuple[str | None, dict[str, Any]]:
    if not isinstance(decoded, list) or len(decoded) != 3:
        shape = f"a list of {len(decoded)}" if isinstance(decoded, list) else type(decoded).__name__
        return f"the body must be a JSON array [args, kwargs, embed]; got {shape}", {}
    args, kwargs, embed = decoded
    if not isinstance(args, list):
        return f"args must be an array; got {type(args).__name__}", {}
    if not isinstance(kwargs, dict):
        return f"kwargs must be an object; got {type(kwargs).__name__}", {}
    if embed is not None and not isinstance(embed, dict):
        return f"embed must be an object or null; got {type(embed).__name__}", {}
    extra = set(embed or {}) - EMBED_KEYS
    if extra:
        return f"embed has unknown keys {sorted(map(str, extra))}; allowed {sorted(EMBED_KEYS)}", {}
    used = sorted(key for key, value in (embed or {}).items() if value is not None)
    if used:
        return f"embed must hold only nulls (loopml tasks take no {', '.join(used)})", kwargs
    task = headers["task"]
    try:
        parsed = parse_message(MESSAGES[task], tuple(args), kwargs)
    except MessageError as error:
        return str(error), kwargs
    field_name = OWN_IDS[task]
    own_id = getattr(parsed, field_name)
    if headers["id"] != own_id:
        return (
            f"the id header {_show(headers['id'])} differs from kwargs.{field_name} "
            f"{_show(own_id)}; they must be equal",
            kwargs,
        )
    return None, kwargs


def _wrong_queue(message: Any, task: str | None, queues: Mapping[str, str]) -> str | None:
    info = getattr(message, "delivery_info", None)
    arrived = info.get("routing_key") if isinstance(info, dict) else None
    expected = queues.get(task or "")
    if expected and arrived in queues.values() and arrived != expected:
        return f"task {task} arrived on queue {arrived!r}; it belongs on {expected!r}"
    return None


def _candidate_ids(message: Any, headers: dict[str, Any], kwargs: dict[str, Any]) -> str | None:
    """The job a message names: kwargs ``job_id``, else the ``id`` header, else correlation id."""
    properties = getattr(message, "properties", None)
    correlation = properties.get("correlation_id") if isinstance(properties, dict) else None
    for value in (kwargs.get("job_id"), headers.get("id"), correlation):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and _JOB_ID.match(value):
            return value
    return None


def _deliveries(headers: dict[str, Any]) -> int:
    value = headers.get(DELIVERIES_HEADER)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
