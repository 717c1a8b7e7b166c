"""Schemathesis fuzzes the jobs API (with a key) from its own OpenAPI document.

No input may cause a 5xx, and every answer must be one the document
describes: status code, content type and body schema.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

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

from loopml.core.settings import Settings
from tests.api.conftest import AUTH, KEY, running_api

pytestmark = pytest.mark.timeout(300)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("api-fuzz")
    configured = Settings(home=folder / "home", api_keys=[KEY], data_roots=[folder])
    with running_api(configured) as url:
        yield url


def test_no_input_causes_a_server_error_or_an_undocumented_answer(api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        try:
            call()
        except Unsatisfiable:  # no invalid request exists for a GET without parameters
            assert mode is GenerationMode.NEGATIVE
