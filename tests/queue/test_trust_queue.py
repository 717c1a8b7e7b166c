"""Inference workers refuse untrusted versions: the job fails with the reason, nothing is
written, no code from the altered file runs, the workers live on; an approved version scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.batch import ModelRef
from loopml.core.errors import LoopmlError
from loopml.core.status import Status
from loopml.lifecycle import approve_files, move_alias
from loopml.queue.batches import score_through_queue
from loopml.store.predictions import PredictionLog
from tests.queue.conftest import Stack
from tests.registry import small

pytestmark = pytest.mark.timeout(600)


def test_workers_refuse_altered_and_outside_versions_until_approved(
    rabbit_stack: Stack, tmp_path: Path
) -> None:
    stack = rabbit_stack
    workers = stack.ensure_workers(2)
    settings = stack.settings
    name = small.new_name()
    altered = small.register_with_loopml(settings, name, seed=1)
    marker = tmp_path / "code-ran"
    small.plant_pickle(small.stored_folder(settings, name, altered), marker)
    outside = small.register_with_mlflow(settings, name, seed=2)
    frame = small.frame(40, seed=3)
    log = PredictionLog.open(settings.database)
    jobs = stack.jobs()
    try:
        for version, why in (
            (altered, "changed since it was registered"),
            (outside, "registered outside loopml"),
        ):
            move_alias(settings, name, "champion", version, reason="test")
            with pytest.raises(LoopmlError, match="refusing to load model") as caught:
                score_through_queue(
                    stack.app,
                    settings,
                    ModelRef.parse(name),
                    frame,
                    batch_rows=10,
                    timeout_seconds=180,
                )
            assert why in str(caught.value) and f"version {version}" in str(caught.value)
            failed = [j for j in jobs.list(limit=5) if j.model_name == f"{name}/{version}"]
            assert failed and failed[0].status == Status.REJECTED
            assert why in (failed[0].error or "")
            assert log.count(model_name=name) == 0
        assert not marker.exists()
        assert all(worker.alive for worker in workers)

        approve_files(settings, name, outside, reason="reviewed", actor="grace")
        _, scored = score_through_queue(
            stack.app, settings, ModelRef.parse(name), frame, batch_rows=10, timeout_seconds=180
        )
        assert len(scored) == 40
        assert log.count(model_name=name) == 40
    finally:
        jobs.close()
        log.engine.dispose()
