"""Quiet by default must not outlive itself: a ``-v`` command after a quiet one speaks again."""

from __future__ import annotations

import os
import warnings

import pytest

from loopml.cli import quiet

NAMES = ("MLFLOW_LOGGING_LEVEL", "PYTHONWARNINGS", quiet.MARKER)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*NAMES, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.delenv(name, raising=False)


def test_quiet_then_verbose_in_one_process_and_in_a_child() -> None:
    with warnings.catch_warnings():
        quiet.configure(False, terminal=False)
        assert os.environ["PYTHONWARNINGS"] == "ignore"  # joblib workers inherit it
        assert os.environ["MLFLOW_LOGGING_LEVEL"] == "ERROR"
        inherited = dict(os.environ)  # what a process started now would get
        quiet.configure(True, terminal=True)
        assert not any(name in os.environ for name in NAMES)
        os.environ.update({k: v for k, v in inherited.items() if k in NAMES})
        quiet.configure(True, terminal=True)  # the child, run with -v
        assert not any(name in os.environ for name in NAMES)


def test_a_users_own_settings_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "DEBUG")
    with warnings.catch_warnings():
        quiet.configure(False, terminal=False)
        assert os.environ["MLFLOW_LOGGING_LEVEL"] == "DEBUG"
        quiet.configure(True, terminal=False)
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "DEBUG"
