"""The PyTorch example spec on a real worker: the MLflow Project runs in the worker's job."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from loopml.core.status import Status
from loopml.queue.submit import submit_spec_file
from tests.examples.pytorch_specs import example_data, example_specs
from tests.queue.conftest import Stack

pytest.importorskip("torch", reason="the torch extra: pip install 'loopml[torch]'")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.mark.postgres
def test_the_same_spec_runs_on_a_queue_worker(tmp_path: Path, rabbit_stack: Stack) -> None:
    """The PyTorch spec submitted to a real worker: the project runs there, the job registers."""
    from loopml.lifecycle import load_trusted
    from loopml.registry.reference import ModelReference

    stack = rabbit_stack
    stack.ensure_workers(1)
    _, torch_spec = example_specs(tmp_path, example_data(tmp_path))
    spec = json.loads(torch_spec.read_text())
    name = f"pytorch_{uuid.uuid4().hex[:6]}"
    spec["experiment_config"].update(model_name=name, experiment_name=name)
    torch_spec.write_text(json.dumps(spec))
    job = submit_spec_file(stack.app, stack.settings, torch_spec)
    done = stack.wait_finished(job.id, timeout=600)
    assert done.status == Status.SUCCEEDED, done.error
    assert (done.registered_name, done.registered_version) == (name, "1")
    loaded = load_trusted(stack.settings, ModelReference(name, version="1"))
    assert loaded.flavor == "python_function" and loaded.classes == [0, 1]
