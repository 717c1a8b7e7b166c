"""The continuous-training demo as a test: drift at a known window brings a retrain with no person.

Real everything on embedded defaults: a `loopml worker` on the embedded broker, `loopml serve`
on a free port, the prediction log and feedback in SQLite, MLflow in the demo's own home.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).parents[2] / "examples" / "continuous_training" / "run.py"
DRIFT_AT = 3


@pytest.fixture(scope="module")
def timeline(tmp_path_factory: pytest.TempPathFactory) -> Any:
    spec = importlib.util.spec_from_file_location("ct_demo_run", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ct_demo_run"] = module
    spec.loader.exec_module(module)
    home = tmp_path_factory.mktemp("ct") / "home"
    return module.run_demo(home, windows=DRIFT_AT + 4, rows=300, drift_at=DRIFT_AT)


def test_drift_is_detected_within_three_windows_and_retrains_once(timeline: Any) -> None:
    retrains = timeline.retrain_windows
    assert len(retrains) == 1, timeline.lines
    assert DRIFT_AT <= retrains[0] < DRIFT_AT + 3
    assert all(index >= DRIFT_AT for index in timeline.alerts)


def test_the_new_champion_wins_on_post_drift_data_and_is_served(timeline: Any) -> None:
    first, final = timeline.first_champion, timeline.final_champion
    assert final != first
    new, old = timeline.new_champion_accuracy, timeline.old_champion_accuracy
    assert new > old + 0.1
    served = timeline.served_versions
    assert served[0] == first and served[-1] == final
    accuracy = timeline.live_accuracy
    assert accuracy[-1] > accuracy[DRIFT_AT] + 0.1  # accuracy recovers after the swap
