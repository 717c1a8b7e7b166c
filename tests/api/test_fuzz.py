"""Schemathesis fuzzes the jobs API (with a key) from its own OpenAPI document.

No input may cause a 5xx, and every answer must be one the document
describes: status code, content type and body schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis

from loopml.core.settings import Settings
from tests.api.conftest import AUTH, KEY, running_api
from tests.fuzzing import fuzz

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("api-fuzz")
    configured = Settings(home=folder / "home", api_keys=[KEY], data_roots=[folder])
    with running_api(configured) as url:
        yield url


def test_no_input_causes_a_server_error_or_an_undocumented_answer(api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json", headers=AUTH)
    assert fuzz(schema, examples=15, headers=AUTH) >= 5
