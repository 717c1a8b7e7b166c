"""The server's prediction log writer: overflow and leftovers of dead processes are never lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from loopml.core.settings import Settings
from loopml.serving.predlog import Label, PredictionLogger, Scored
from loopml.serving.table import Table
from loopml.store.predictions import PredictionLog
from tests.serving.conftest import wait_for

NAMES = ("a", "b")


def _scored(first: int, n: int) -> Scored:
    matrix = np.arange(first * 2, (first + n) * 2, dtype=float).reshape(n, 2)
    matrix[0, 1] = np.nan  # stored as null, not as invalid JSON
    return Scored(
        "m",
        "3",
        time.time(),
        [f"{i:032x}" for i in range(first, first + n)],
        Table(NAMES, n, matrix=matrix),
        [1] * n,
        [[0.25, 0.75]] * n,
        ["0", "1"],
        1.5,
    )


def test_a_full_queue_spools_on_the_request_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    logger = PredictionLogger(url, tmp_path / "spool", max_queued_rows=4, flush_s=0.05)
    logger.log(_scored(0, 3))
    logger.log(_scored(3, 3))  # over the bound: straight to the spool file
    logger.log(Label(f"{1:032x}", "fraud", time.time()))
    assert logger.queued_rows == 4 and logger.status()["spooled"] == 3
    log = PredictionLog.open(url)  # migrated here first: the test reads it too
    logger.start()
    try:
        wait_for(lambda: log.count(model_name="m") == 6 and not logger.status()["spool_pending"])
        wait_for(lambda: log.labels([f"{1:032x}"]) == {f"{1:032x}": "fraud"})
        frame = next(log.frames("m"))
        first = frame.set_index("prediction_id").loc[f"{0:032x}"]
        assert first["a"] == 0.0
        assert first["b"] is None or np.isnan(first["b"])
        assert first["probabilities"] == {"0": 0.25, "1": 0.75}
    finally:
        logger.stop()


def test_spools_left_by_a_dead_process_are_replayed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(dead.stdout)
    spool = tmp_path / "spool"
    spool.mkdir()
    row = {
        "k": "p",
        "id": "f" * 32,
        "model_name": "m",
        "model_version": "1",
        "inputs": {"a": 1.0, "b": 2.0},
        "outputs": {"prediction": 0},
        "created_at": time.time(),
        "latency_ms": 1.0,
    }
    (spool / f"predictions-{pid}.jsonl").write_bytes(orjson.dumps(row) + b"\n")
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog.open(url)
    logger = PredictionLogger(url, spool, flush_s=0.05, retry_s=0.05)
    logger.start()
    try:
        wait_for(lambda: log.exists("f" * 32))
        wait_for(lambda: not list(spool.glob("predictions-*")))
    finally:
        logger.stop()


@pytest.mark.parametrize("value", ["k1,k2", " k1 , k2 ,"])
def test_api_keys_come_comma_separated(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_SERVE_API_KEYS", value)
    monkeypatch.setenv("LOOPML_SERVE_BATCH_WAIT_MS", "0.5")
    settings = Settings()
    assert settings.serve_api_keys == ["k1", "k2"]
    assert settings.serve_batch_wait_ms == 0.5
    assert settings.spool_dir == settings.home / "spool"
