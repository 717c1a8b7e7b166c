"""Real registered models in the session's MLflow store, and real uvicorn servers on free ports."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopml.core.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
from make_creditcard import make_creditcard, write_zip

MODEL = "fraud_serving"


@dataclass(frozen=True)
class Registered:
    name: str
    source: str  # the model URI version 1 was registered from
    tracking_uri: str


def serving_settings(home: Path, tracking_uri: str, database_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "tracking_uri": tracking_uri,
        "database_url": database_url,
        "artifact_root": (home / "artifacts").as_uri(),
        "serve_watch_interval_s": 0.5,
        "serve_log_flush_s": 0.05,
        # the session's model is registered with another metadata store than each test's,
        # so it has no trust record here; trust tests (tests/registry) pass their own list
        "trusted_registrars": ["*"],
        **extra,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def registered(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """A logistic-regression fraud pipeline trained by the engine and registered as champion."""
    from loopml.core.spec import parse_spec
    from loopml.engine import run_pipeline
    from loopml.registry.models import get_version

    folder = tmp_path_factory.mktemp("serving-model")
    data = write_zip(make_creditcard(800, positive_rate=0.1, seed=3), folder / "cc.zip")
    spec = {
        "pipeline": [
            {
                "MLSteps": [
                    {"load_data_from_file": {"path": str(data)}},
                    {
                        "train_model": {
                            "modeling_params": {
                                "estimator_list": ["lr"],
                                "fold": 2,
                                "session_id": 1,
                            },
                            "finalize": False,
                        }
                    },
                    {"register_model": {}},
                ]
            }
        ],
        "experiment_config": {
            "experiment_name": "serving-tests",
            "model_name": MODEL,
            "main_metric": "F1",
            "problem_type": "classification",
            "target": "Class",
        },
    }
    settings = serving_settings(folder / "home", tracking_uri, f"sqlite:///{folder / 'm.db'}")
    run_pipeline(parse_spec(json.dumps(spec)), settings)
    version = get_version(settings, MODEL, "1")
    assert "champion" in version.aliases
    return Registered(MODEL, version.source, tracking_uri)


RUNTIMES = ["pyfunc", "onnx"]
"""The serving runtimes the protocol tests run against (``loopml serve --runtime``)."""
TOLERANCE = {"pyfunc": 1e-9, "onnx": 1e-5}
"""How close each runtime's probabilities are to the pipeline's (ONNX computes in float32)."""


def sample_rows(n: int, seed: int = 11) -> list[dict[str, Any]]:
    frame = make_creditcard(n, seed=seed).drop(columns=["Class"])
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


class LiveServer:
    """A uvicorn server on a free loopback port, run on a thread of the test process."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextmanager
def live_server(settings: Settings, model: str) -> Iterator[LiveServer]:
    from loopml.serving import build_app

    server = LiveServer(build_app(settings, model)).start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(condition: Any, timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = condition()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(every)
        value = condition()
    return value
