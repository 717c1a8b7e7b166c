"""Worker processes, a cuttable TCP proxy to RabbitMQ, raw AMQP publishing, fresh databases.

Shared by the queue, batch and API tests. Every test run uses its own queue
prefix and its own PostgreSQL databases, so engineers sharing the servers
never see each other's messages or rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from loopml.core.settings import Settings

RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672
RABBIT_URL = f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}//"
EXAMPLES = Path(__file__).parents[2] / "examples"


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.3, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as LOOPML_* variables for a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update(
        LOOPML_HOME=str(settings.home),
        LOOPML_TRACKING_URI=settings.tracking,
        LOOPML_DATABASE_URL=settings.database,
        LOOPML_ARTIFACT_ROOT=settings.artifacts,
        LOOPML_QUEUE_PREFIX=settings.queue_prefix,
        LOOPML_QUEUE_TYPE=settings.queue_type,
        LOOPML_TRAINING_TIME_LIMIT=str(settings.training_time_limit),
        LOOPML_CONSUMER_TIMEOUT=str(settings.consumer_timeout),
        LOOPML_MAX_DELIVERIES=str(settings.max_deliveries),
        LOOPML_TUNING_HEARTBEAT=str(settings.tuning_heartbeat),
        LOOPML_TUNING_GRACE_PERIOD=str(settings.tuning_grace_period),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    if settings.broker_url:
        env["LOOPML_BROKER_URL"] = settings.broker_url
    if settings.data_roots:
        env["LOOPML_DATA_ROOTS"] = ",".join(str(root) for root in settings.data_roots)
    if settings.batch_roots:
        env["LOOPML_BATCH_ROOTS"] = ",".join(str(root) for root in settings.batch_roots)
    if settings.data_sources:
        env["LOOPML_DATA_SOURCES"] = json.dumps(settings.data_sources)
    return env


class Worker:
    """``loopml worker`` in its own process group, so a SIGKILL takes its pool with it."""

    def __init__(self, settings: Settings, log: Path, queues: str, concurrency: int = 1) -> None:
        self.log = log
        self._file = log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loopml",
                "worker",
                "--queues",
                queues,
                "--concurrency",
                str(concurrency),
            ],
            env=settings_env(settings),
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.hostname_prefix = f"loopml-{self.process.pid}@"

    def wait_ready(self, timeout: float = 90) -> None:
        wait_for(
            lambda: " ready." in self.log.read_text(errors="replace") or self._died(),
            timeout=timeout,
            what=f"worker {self.process.pid} to be ready",
        )
        assert self.process.poll() is None, self.log.read_text(errors="replace")[-3000:]

    def _died(self) -> bool:
        return self.process.poll() is not None

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: a machine that vanished."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown, then SIGKILL whatever is left of the group."""
        if self.alive:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self._file.close()


def amqp_connection() -> Any:
    import amqp

    connection = amqp.Connection(f"{RABBIT_HOST}:{RABBIT_PORT}", userid="guest", password="guest")
    connection.connect()
    return connection


def queue_depth(name: str) -> int:
    """Messages ready in queue ``name`` (a passive declare, so it never creates the queue)."""
    connection = amqp_connection()
    try:
        return int(connection.channel().queue_declare(name, passive=True).message_count)
    finally:
        connection.close()


def delete_topology(prefix: str) -> None:
    """Remove the queues and exchanges of one test run's prefix from the shared broker."""
    import amqp

    names = [f"{prefix}training", f"{prefix}inference", f"{prefix}loopml.dead"]
    connection = amqp_connection()
    try:
        for name in names:
            for delete in ("queue_delete", "exchange_delete"):
                channel = connection.channel()
                try:
                    getattr(channel, delete)(name)
                    channel.close()
                except amqp.exceptions.AMQPError:
                    pass
    finally:
        connection.close()


def publish_raw(
    queue: str, body: bytes, *, task: str, task_id: str, content_type: str = "application/json"
) -> None:
    """Publish a Celery protocol v2 message by hand, as a client in another language would."""
    import amqp

    message = amqp.Message(
        body,
        content_type=content_type,
        content_encoding="utf-8",
        delivery_mode=2,
        correlation_id=task_id,
        application_headers=protocol_headers(task, task_id),
    )
    connection = amqp_connection()
    try:
        connection.channel().basic_publish(message, exchange="", routing_key=queue)
    finally:
        connection.close()


def task_body(kwargs: dict[str, Any]) -> bytes:
    """A protocol v2 body: ``[args, kwargs, embed]``."""
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return json.dumps([[], kwargs, embed]).encode()


def write_spec(
    folder: Path,
    data: Path,
    model_name: str,
    *,
    estimators: tuple[str, ...] = ("dt",),
    register: bool = True,
) -> Path:
    """A small spec file: load, train (fold 2), evaluate, register."""
    steps: list[dict[str, Any]] = [
        {"load_data_from_file": {"path": str(data)}},
        {
            "train_model": {
                "modeling_params": {
                    "estimator_list": list(estimators),
                    "fold": 2,
                    "n_select": 1,
                    "tune": False,
                },
                "finalize": False,
            }
        },
        {"evaluate_model": {}},
    ]
    if register:
        steps.append({"register_model": {}})
    spec = {
        "pipeline": [{"MLSteps": steps}],
        "experiment_config": {
            "experiment_name": f"exp-{model_name}",
            "model_name": model_name,
            "main_metric": "F1",
            "problem_type": "classification",
            "target": "Class",
        },
    }
    path = folder / f"{model_name}.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def make_data(folder: Path, rows: int, seed: int = 5) -> Path:
    sys.path.insert(0, str(EXAMPLES))
    from make_creditcard import make_creditcard, write_zip

    return write_zip(
        make_creditcard(rows, positive_rate=0.05, seed=seed), folder / f"cc_{rows}_{seed}.zip"
    )


def publish_amqp(
    queue: str,
    body: bytes,
    *,
    headers: dict[str, Any],
    content_type: str | None = "application/json",
    content_encoding: str | None = "utf-8",
    correlation_id: str | None = None,
    message_id: str | None = None,
) -> None:
    """Publish any bytes with any properties to ``queue``: what a hostile or broken client sends."""
    import amqp

    properties: dict[str, Any] = {"delivery_mode": 2, "application_headers": headers}
    for key, value in (
        ("content_type", content_type),
        ("content_encoding", content_encoding),
        ("correlation_id", correlation_id),
        ("message_id", message_id),
    ):
        if value is not None:
            properties[key] = value
    connection = amqp_connection()
    try:
        connection.channel().basic_publish(
            amqp.Message(body, **properties), exchange="", routing_key=queue
        )
    finally:
        connection.close()


def drain_queue(name: str) -> list[Any]:
    """Take (and acknowledge) every message ready in queue ``name``."""
    connection = amqp_connection()
    taken: list[Any] = []
    try:
        channel = connection.channel()
        while (message := channel.basic_get(name, no_ack=True)) is not None:
            taken.append(message)
    finally:
        connection.close()
    return taken


def protocol_headers(task: str, task_id: str | None) -> dict[str, Any]:
    """Protocol-2 headers as ``publish_raw`` sends them; ``task_id`` None leaves ``id`` out."""
    headers: dict[str, Any] = {"lang": "py", "task": task}
    if task_id is not None:
        headers["id"] = task_id
    headers.update(root_id=task_id, parent_id=None, group=None, retries=0, eta=None, expires=None)
    return headers


def rabbit_settings(folder: Path, prefix: str, database: str, tracking: str, **extra: Any) -> Any:
    """Settings for a stack of its own on the shared RabbitMQ and PostgreSQL servers."""
    return Settings(
        home=folder / "home",
        broker_url=RABBIT_URL,
        tracking_uri=tracking,
        database_url=database,
        artifact_root=(folder / "artifacts").as_uri(),
        queue_prefix=prefix,
        **extra,
    )


def wait_job_finished(jobs: Any, job_id: str, *, timeout: float = 180, what: str = "") -> Any:
    """The job ``job_id`` once it ended (it may not exist yet: a worker creates raw jobs' rows)."""
    return wait_for(
        lambda: (found := jobs.find(job_id)) and found.finished and found,
        timeout=timeout,
        what=what or f"job {job_id} to end",
    )
