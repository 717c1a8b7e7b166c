"""A real deployment in miniature: RabbitMQ, PostgreSQL for the metadata store and for MLflow,
two ``loopml worker`` processes reaching RabbitMQ through a proxy the tests can cut."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from loopml.core.settings import Settings
from tests.conftest import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    fresh_postgres_database,
    require_service,
)
from tests.proxy import TcpProxy
from tests.queue.helpers import (
    RABBIT_HOST,
    RABBIT_PORT,
    RABBIT_URL,
    Worker,
    delete_topology,
    make_data,
    wait_for,
)


@dataclass
class Stack:
    """Settings for workers (through the proxy) and for the test (straight to RabbitMQ)."""

    folder: Path
    worker_settings: Settings
    settings: Settings
    proxy: TcpProxy
    data: Path
    app: Any
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, queues: str = "training,inference") -> Worker:
        log = self.folder / f"worker-{len(self.workers)}.log"
        worker = Worker(self.worker_settings, log, queues)
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def live_workers(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.alive]

    def ensure_workers(self, count: int) -> list[Worker]:
        while len(self.live_workers()) < count:
            self.start_worker()
        return self.live_workers()

    def worker_for(self, hostname: str | None) -> Worker:
        assert hostname is not None
        return next(w for w in self.workers if hostname.startswith(w.hostname_prefix))

    def jobs(self) -> Any:
        from loopml.store.jobs import JobStore

        return JobStore(self.settings.database)

    def wait_finished(self, job_id: str, timeout: float = 240) -> Any:
        jobs = self.jobs()
        try:
            return wait_for(
                lambda: (job := jobs.get(job_id)).finished and job,
                timeout=timeout,
                what=f"job {job_id} to finish",
            )
        finally:
            jobs.close()


def init_stores(settings: Settings) -> None:
    """Create both schemas once, here, so two workers never race to create them."""
    from loopml.registry.tracking import use_tracking
    from loopml.store.db import connect

    connect(settings.database).dispose()
    use_tracking(settings).MlflowClient().search_experiments()


@pytest.fixture(scope="session")
def rabbit_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_service("RabbitMQ", RABBIT_HOST, RABBIT_PORT)
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    from loopml.queue import make_app

    folder = tmp_path_factory.mktemp("stack")
    prefix = f"loopml-test-{uuid.uuid4().hex[:8]}."
    proxy = TcpProxy(RABBIT_HOST, RABBIT_PORT).start()
    with (
        fresh_postgres_database("meta") as database,
        fresh_postgres_database("mlflow") as tracking,
    ):
        common: dict[str, Any] = {
            "home": folder / "home",
            "tracking_uri": tracking,
            "database_url": database,
            "artifact_root": (folder / "artifacts").as_uri(),
            "queue_prefix": prefix,
            # a distributed trial whose worker was killed is retried after seconds, not a minute
            "tuning_heartbeat": 1,
            "tuning_grace_period": 4,
        }
        settings = Settings(broker_url=RABBIT_URL, **common)
        init_stores(settings)
        stack = Stack(
            folder=folder,
            worker_settings=Settings(
                broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}//", **common
            ),
            settings=settings,
            proxy=proxy,
            data=make_data(folder, 2000),
            app=make_app(settings),
        )
        try:
            stack.start_worker()
            stack.start_worker()
            yield stack
        finally:
            for worker in stack.workers:
                worker.stop()
            proxy.close()
            delete_topology(prefix)
