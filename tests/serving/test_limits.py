"""The model server refuses a body over LOOPML_SERVE_MAX_BODY_BYTES with 413, before parsing it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.serving.conftest import Registered, live_server, sample_rows, serving_settings

MB = 1024 * 1024


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_a_body_over_the_limit_is_refused_on_every_route(
    registered: Registered, tmp_path: Path
) -> None:
    settings = serving_settings(
        tmp_path / "home",
        registered.tracking_uri,
        f"sqlite:///{tmp_path / 'log.db'}",
        serve_api_keys="k1",
    )
    auth = {"Authorization": "Bearer k1"}
    big = b'[{"V1": ' + b"1" * (20 * MB) + b"}]"
    paths = ["/predict", "/invocations", f"/v2/models/{registered.name}/infer", "/feedback"]
    with (
        live_server(settings, f"{registered.name}@champion") as server,
        httpx.Client(base_url=server.url, headers=auth, timeout=20) as client,
    ):
        for path in paths:
            declared = client.post(path, content=big, headers={"Content-Type": "application/json"})
            assert declared.status_code == 413, (path, declared.text)
            assert "LOOPML_SERVE_MAX_BODY_BYTES" in declared.json()["error"]
            chunked = client.post(path, content=_chunks(20 * MB))
            assert chunked.status_code == 413, path
            assert "content-length" not in chunked.request.headers
        # a large body under the limit is still scored
        rows = sample_rows(1) * 2000
        assert len(json.dumps(rows)) > MB
        answer = client.post("/predict", json=rows)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 2000
        anonymous = httpx.post(f"{server.url}/predict", content=big, timeout=20)
        assert anonymous.status_code == 401  # refused before a byte of the body is read
        metrics = client.get("/metrics").text
        assert 'endpoint="/predict",status="413"' in metrics
