"""The retrain hook's spec surgery, and the scheduled monitor's reuse of its reference."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.core.errors import ConfigError
from loopml.core.settings import Settings
from loopml.core.spec import parse_spec
from loopml.monitoring import MonitorPolicy, WindowSpec
from loopml.monitoring.retrain import training_data, with_fresh_data
from loopml.monitoring.service import PassOptions, ReferenceCache, monitor_pass

SPEC = {
    "pipeline": [
        {
            "MLSteps": [
                {"load_data_from_sql": {"url": "sqlite:///x.db", "query": "loans"}},
                {"train_model": {"modeling_params": {"estimator_list": ["lr"], "fold": 2}}},
                {"validate_model": {"threshold": 0.7}},
            ]
        }
    ],
    "experiment_config": {
        "experiment_name": "e",
        "model_name": "m",
        "main_metric": "Accuracy",
        "problem_type": "classification",
        "target": "y",
    },
}


def test_the_load_step_is_replaced_and_everything_else_kept(tmp_path: Path) -> None:
    spec = parse_spec(json.dumps(SPEC), source=tmp_path / "spec.json")
    fresh = with_fresh_data(spec, "recent/window.csv")
    assert [call.name for call in fresh.steps] == [
        "load_data_from_file",
        "train_model",
        "validate_model",
    ]
    assert fresh.steps[0].params == {"path": "recent/window.csv"}
    assert fresh.steps[1].params == spec.steps[1].params
    assert fresh.experiment == spec.experiment
    assert training_data(fresh) == tmp_path / "recent" / "window.csv"
    assert training_data(with_fresh_data(spec, "/data/new.csv")) == Path("/data/new.csv")


def test_a_spec_without_a_load_step_or_file_says_what_to_do() -> None:
    no_load = json.loads(json.dumps(SPEC))
    no_load["pipeline"][0]["MLSteps"].pop(0)
    with pytest.raises(ConfigError, match="no load_data_"):
        with_fresh_data(parse_spec(json.dumps(no_load)), "fresh.csv")
    with pytest.raises(ConfigError, match="pass --reference"):
        training_data(parse_spec(json.dumps(SPEC)))


def test_a_scheduled_monitor_reuses_its_reference_until_the_data_changes(
    settings: Settings, tmp_path: Path
) -> None:
    reference = tmp_path / "train.csv"
    pd.DataFrame({"x": np.arange(200.0), "y": np.arange(200) % 2}).to_csv(reference, index=False)
    options = PassOptions(
        window=WindowSpec(rows=100),
        policy=MonitorPolicy(),
        reference=reference,
        target="y",
        champion=False,
        retrain=False,
    )
    cache = ReferenceCache()
    monitor_pass(settings, "m", options, cache=cache)
    first = cache.reference
    monitor_pass(settings, "m", options, cache=cache)
    assert cache.reference is first
    os.utime(reference, ns=(1, 1))  # the training data was rewritten
    monitor_pass(settings, "m", options, cache=cache)
    assert cache.reference is not first and cache.reference is not None
