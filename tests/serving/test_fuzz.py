"""Schemathesis fuzzes the model server from its own OpenAPI document.

No input may cause a 5xx, and every answer must be one the document
describes: status code, content type and body schema (``/ping``, ``/metrics``
and the error bodies included).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis

from tests.fuzzing import fuzz
from tests.serving.conftest import LiveServer, Registered, live_server, serving_settings


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
    assert fuzz(api_schema, examples=12) >= 15
    statuses = httpx.get(f"{fuzz_server.url}/metrics").text
    # the fuzzer reached the model and was refused too: both paths ran
    assert 'endpoint="/predict",status="200"' in statuses
    assert 'endpoint="/predict",status="422"' in statuses
    assert re.search(r"endpoint=\"/v2/models/{name}/infer\",status=\"4(00|22)\"", statuses)
