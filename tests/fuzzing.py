"""Schemathesis over a live server's OpenAPI document, shared by the serving and jobs API tests.

Each operation gets a bounded number of generated requests, valid and invalid,
and every answer must pass the conformance checks: no 5xx, and status code,
content type and body as the document states.
"""

from __future__ import annotations

import itertools
from typing import Any

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

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(
    schema: schemathesis.BaseSchema, *, examples: int, headers: dict[str, str] | None = None
) -> int:
    """Run every operation of ``schema`` in both generation modes; how many operations."""
    operations: list[Any] = [result.ok() for result in schema.get_all_operations()]
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            call()
        except Unsatisfiable:  # no invalid request exists for a GET without parameters
            assert mode is GenerationMode.NEGATIVE
    return len(operations)
