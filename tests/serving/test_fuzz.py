"""Schemathesis fuzzes the model server from its own OpenAPI document.

No input may cause a 5xx, and every answer must be one the document
describes: status code, content type and body schema (``/ping``, ``/metrics``
and the error bodies included).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serving.conftest import LiveServer, Registered, live_server, serving_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_server(
    registered: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    configured = serving_settings(home, registered.tracking_uri, f"sqlite:///{home / 'log.db'}")
    with live_server(configured, f"{registered.name}@champion") as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(fuzz_server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


def test_no_input_causes_a_server_error(
    api_schema: schemathesis.BaseSchema, fuzz_server: LiveServer
) -> None:
    """Every operation, a bounded number of generated requests each (valid and invalid)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            call()
        except Unsatisfiable:  # no invalid request exists for a GET without parameters
            assert mode is GenerationMode.NEGATIVE
    statuses = httpx.get(f"{fuzz_server.url}/metrics").text
    # the fuzzer reached the model and was refused too: both paths ran
    assert 'endpoint="/predict",status="200"' in statuses
    assert 'endpoint="/predict",status="422"' in statuses
    assert re.search(r"endpoint=\"/v2/models/{name}/infer\",status=\"4(00|22)\"", statuses)
