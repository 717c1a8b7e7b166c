"""API keys: with keys configured every endpoint but health needs ``Authorization: Bearer``."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.serving.conftest import Registered, live_server, sample_rows, serving_settings


def test_keys_guard_everything_but_health(registered: Registered, tmp_path: Path) -> None:
    settings = serving_settings(
        tmp_path / "home",
        registered.tracking_uri,
        f"sqlite:///{tmp_path / 'log.db'}",
        serve_api_keys="alpha, beta",
    )
    assert settings.serve_api_keys == ["alpha", "beta"]
    rows = sample_rows(1)
    with live_server(settings, f"{registered.name}@champion") as server:
        url = server.url
        for path in ("/ping", "/health", "/v2/health/live", "/v2/health/ready"):
            assert httpx.get(url + path).status_code == 200, path
        guarded = ["/metadata", "/metrics", "/version", "/docs", "/openapi.json", "/v2"]
        for path in guarded:
            answer = httpx.get(url + path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"] == "Bearer"
        for headers in ({}, {"Authorization": "Bearer gamma"}, {"Authorization": "alpha"}):
            answer = httpx.post(f"{url}/predict", json=rows, headers=headers)
            assert answer.status_code == 401
            assert "Authorization: Bearer" in answer.json()["error"]
        for key in ("alpha", "beta"):
            answer = httpx.post(
                f"{url}/predict", json=rows, headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 200
        assert (
            httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer beta"}).status_code == 200
        )

        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        assert client.is_server_live()
        tensors = []
        for column, value in rows[0].items():
            tensor = triton.InferInput(column, [1], "FP64")
            tensor.set_data_from_numpy(np.array([value]))
            tensors.append(tensor)
        with pytest.raises(InferenceServerException, match="API key"):
            client.infer(registered.name, tensors)
        result = client.infer(registered.name, tensors, headers={"Authorization": "Bearer alpha"})
        assert result.as_numpy("predict").shape == (1,)
