"""Submitting when the broker cannot be reached: a clear error, and the job recorded as failed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from loopml.core.errors import BrokerError
from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.queue import make_app
from loopml.queue.submit import submit_spec_file
from loopml.store.jobs import JobStore
from tests.queue.helpers import make_data, write_spec


def test_a_broker_that_is_down_is_reported_and_the_job_failed(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(home=tmp_path / "home", broker_url=f"amqp://guest:guest@127.0.0.1:{port}//")
    spec = write_spec(tmp_path, make_data(tmp_path, 200), "unqueued")
    with pytest.raises(BrokerError, match=rf"cannot publish to the broker at amqp://.*:{port}"):
        submit_spec_file(make_app(settings), settings, spec)
    jobs = JobStore(settings.database)
    (job,) = jobs.list()
    jobs.close()
    assert job.status == Status.FAILED and job.error.startswith("could not be queued:")
