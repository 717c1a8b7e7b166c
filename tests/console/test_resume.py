"""Resume from the console: a failed run goes back on the training queue under its own id.

The run really failed (its data file vanished between the check and the
run). The Resume button reopens the job and publishes the training message
on the broker (the embedded one here), where a worker resumes the run from
its first unfinished step (``loopml.engine.run_job``, tested with workers in
tests/queue). The message is read back from the broker and counted.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loopml.core.errors import StepError
from loopml.core.status import Status
from tests.api.conftest import running_api
from tests.console.conftest import World, csrf_of, login


@pytest.fixture(scope="module")
def failed_run(world: World) -> str:
    from loopml.core.access import DataPolicy
    from loopml.core.spec import parse_spec
    from loopml.engine import check_spec, run_pipeline
    from loopml.steps.registry import StepRegistry
    from loopml.store.runs import RunStore

    assert world.data is not None
    data = world.data.parent / "vanishing.zip"
    shutil.copy(world.data, data)
    spec = {
        "pipeline": [{"MLSteps": [{"load_data_from_file": {"path": str(data)}}]}],
        "experiment_config": {
            "experiment_name": "exp-console-resume",
            "model_name": "console_resume",
            "main_metric": "F1",
            "problem_type": "classification",
            "target": "Class",
        },
    }
    checked = check_spec(
        parse_spec(json.dumps(spec)),
        StepRegistry.with_builtins(),
        policy=DataPolicy.from_settings(world.settings),
    )
    data.unlink()
    with pytest.raises(StepError):
        run_pipeline(checked, world.settings)
    store = RunStore(world.settings.database)
    try:
        (run,) = store.list_runs(model_name="console_resume")
    finally:
        store.close()
    assert run.status == Status.FAILED
    return run.id


@pytest.fixture(scope="module")
def url(world: World) -> Iterator[str]:
    with running_api(world.settings) as base:
        yield base


def _training_messages(world: World) -> list[dict[str, Any]]:
    from loopml.queue import make_app

    app = make_app(world.settings)
    found = []
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(app.loopml_topology.training, no_ack=True)) is not None:
            found.append(message)
    bodies = []
    for message in found:
        _args, kwargs, _ = json.loads(message.body)
        bodies.append({"id": message.headers["id"], **kwargs})
    return bodies


def test_resume_puts_the_failed_run_back_on_the_queue(
    world: World, url: str, failed_run: str
) -> None:
    from loopml.store.jobs import JobStore

    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as client:
        login(client)
        page = client.get(f"/ui/runs/{failed_run}")
        assert "Resume on a training worker" in page.text and "failed" in page.text
        assert "load_data_from_file" in page.text
        refused = client.post(f"/ui/runs/{failed_run}/resume", data={"x": "1"})
        assert refused.status_code == 403
        assert _training_messages(world) == []
        reply = client.post(f"/ui/runs/{failed_run}/resume", data={"csrf": csrf_of(page.text)})
        assert reply.status_code == 200 and "Done: queued to resume" in reply.text
    messages = _training_messages(world)
    assert [m["id"] for m in messages] == [failed_run]
    assert messages[0]["job_id"] == failed_run and "vanishing.zip" in messages[0]["spec"]
    jobs = JobStore(world.settings.database)
    try:
        job = jobs.get(failed_run)
    finally:
        jobs.close()
    assert job.status == Status.QUEUED and job.attempts == 0
    assert job.details["resumes"][0]["by"].startswith("Ann Reviewer (console")
