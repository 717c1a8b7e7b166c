"""One vocabulary: the status words, and every refusal under the LoopmlError tree."""

from __future__ import annotations

import json

import pytest

from loopml.core.errors import LoopmlError
from loopml.core.status import FINISHED, Status


def test_statuses_are_the_words_the_tables_hold() -> None:
    assert [status.value for status in Status] == [
        "requested",
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "rejected",
    ]
    assert Status.FAILED == "failed" and json.dumps({"s": Status.FAILED}) == '{"s": "failed"}'
    assert "failed" in FINISHED and "rejected" in FINISHED  # words read back from a table
    assert "running" not in FINISHED and "queued" not in FINISHED
    assert Status.CANCELLED.finished and not Status.RUNNING.finished


@pytest.mark.parametrize(
    ("module", "name"),
    [("loopml.serving.v2", "V2Error"), ("loopml.serving.mlflow_protocol", "ProtocolError")],
)
def test_protocol_errors_are_loopml_errors(module: str, name: str) -> None:
    import importlib

    error_type = getattr(importlib.import_module(module), name)
    assert issubclass(error_type, LoopmlError)
    assert error_type.exit_code == 2  # bad input, like every other refusal of input
