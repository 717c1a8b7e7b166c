"""Generated pipeline shapes (Metaflow's habit): many specs built from parts, all run for real.

Each shape is a step order with the optional steps (validate_data,
evaluate_model, validate_model, register_model) present or absent, for both
problem types, on 300 rows with one cheap estimator and 2 folds. Every run is
checked by what it left: its row and step attempts in the runs table, the
registry versions and aliases, and the typed outputs. Orders that read
something no earlier step writes are refused by the spec check, with the
step's path, before anything is recorded.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from loopml.core.errors import SpecError
from loopml.core.settings import Settings
from loopml.core.spec import parse_spec
from loopml.engine import check_spec, run_pipeline
from loopml.registry.models import CHAMPION, list_versions, version_for_alias
from loopml.steps.registry import StepRegistry
from loopml.store import RunStore
from loopml.testing import small_frame

PROBLEMS = ("classification", "regression")
ESTIMATOR = {"classification": "dt", "regression": "lr"}
METRIC = {"classification": "F1", "regression": "R2"}
AFTER_TRAIN = ("evaluate_model", "validate_model", "register_model")

# Every order of every subset of the steps that follow train_model: 16 orders.
ORDERS = [
    order
    for size in range(len(AFTER_TRAIN) + 1)
    for subset in itertools.combinations(AFTER_TRAIN, size)
    for order in itertools.permutations(subset)
]
# Each order runs once (16 runs keep this near a minute and a half); the problem type
# alternates with every order and validate_data with every second one, so both problem
# types meet validate_data present and absent, and each optional step in every position.
SHAPES = [(PROBLEMS[index % 2], (index // 2) % 2 == 0, order) for index, order in enumerate(ORDERS)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("generated")
    for problem in PROBLEMS:
        small_frame(problem, rows=300, seed=3).to_csv(folder / f"{problem}.csv", index=False)
    settings = Settings(
        home=folder / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{folder / 'loopml.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
    )
    return {"folder": folder, "settings": settings, "registry": StepRegistry.with_builtins()}


def _document(problem: str, steps: list[str], model_name: str) -> dict[str, Any]:
    params = {
        "load_data_from_file": {"path": f"{problem}.csv"},
        "train_model": {
            "modeling_params": {
                "estimator_list": [ESTIMATOR[problem]],
                "fold": 2,
                "session_id": 7,
                "n_jobs": 1,
            }
        },
    }
    return {
        "pipeline": [{"MLSteps": [{name: params.get(name, {})} for name in steps]}],
        "experiment_config": {
            "experiment_name": "generated-shapes",
            "model_name": model_name,
            "main_metric": METRIC[problem],
            "problem_type": problem,
            "target": "target",
        },
    }


def _shape_id(shape: tuple[str, bool, tuple[str, ...]]) -> str:
    problem, validate, order = shape
    parts = [problem[:5], *(["vd"] if validate else []), *(step.split("_")[0] for step in order)]
    return "-".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_a_generated_shape_runs_through_the_engine(
    shape: tuple[str, bool, tuple[str, ...]], world: dict[str, Any]
) -> None:
    problem, validate, order = shape
    steps = [
        "load_data_from_file",
        *(["validate_data"] if validate else []),
        "train_model",
        *order,
    ]
    name = f"gen_{_shape_id(shape).replace('-', '_')}"
    settings: Settings = world["settings"]
    spec = parse_spec(
        json.dumps(_document(problem, steps, name)), source=world["folder"] / "spec.json"
    )
    checked = check_spec(spec, world["registry"])
    assert checked.step_names == tuple(steps)

    result = run_pipeline(checked, settings, registry=world["registry"])

    store = RunStore(settings.database)
    try:
        run = store.get_run(result.run.id)
        runs_of_model = store.list_runs(model_name=name)
    finally:
        store.close()
    assert [r.id for r in runs_of_model] == [run.id]  # one row in the runs table
    assert run.status == "succeeded" and run.attempts == 1
    assert [(s.position, s.name, s.attempt, s.status) for s in run.steps] == [
        (position, step, 1, "succeeded") for position, step in enumerate(steps)
    ]
    context = result.context
    assert context.loaded is not None and context.loaded.shape == (300, 4)
    assert context.trained is not None and context.trained.main_metric == METRIC[problem]
    assert run.values["trained"]["estimator"] == context.trained.estimator

    registers = "register_model" in order or "validate_model" in order
    versions = list_versions(settings, name)
    if registers:
        assert [v.version for v in versions] == ["1"]  # one version, however many steps need it
        assert context.registered is not None and context.registered.version == "1"
        assert run.registered == context.registered
    else:
        assert versions == [] and context.registered is None
    champion = version_for_alias(settings, name, CHAMPION)
    if "validate_model" in order:
        assert context.gate is not None and context.gate.decision == "promoted"  # no champion yet
        assert champion == "1"
    elif "register_model" in order:
        assert champion == "1"  # champion_if_none, no gate in the pipeline
    else:
        assert champion is None
    assert (context.evaluation is not None) == ("evaluate_model" in order)
    assert (context.data_validation is not None) == validate


INVALID = [
    # (steps, index of the first misplaced step, what it reads)
    (["load_data_from_file", "evaluate_model", "train_model"], 1, "models/best"),
    (["load_data_from_file", "register_model", "train_model"], 1, "trained"),
    (["load_data_from_file", "validate_model", "train_model"], 1, "trained"),
    (["train_model", "load_data_from_file"], 0, "data/train"),
    (["validate_data", "load_data_from_file", "train_model"], 0, "data/train"),
    (["load_data_from_file", "train_model", "validate_data", "evaluate_model"], None, None),
]


@pytest.mark.parametrize(("steps", "index", "needs"), INVALID)
def test_orders_that_read_before_writing_are_refused_with_the_path(
    steps: list[str], index: int | None, needs: str | None, world: dict[str, Any]
) -> None:
    spec = parse_spec(
        json.dumps(_document("classification", steps, "gen_invalid")),
        source=world["folder"] / "spec.json",
    )
    if index is None:  # validate_data after training reads data/train: a valid order
        check_spec(spec, world["registry"])
        return
    with pytest.raises(SpecError) as caught:
        check_spec(spec, world["registry"])
    paths = [issue.path for issue in caught.value.issues]
    assert paths[0] == f"pipeline[0].MLSteps[{index}].{steps[index]}"
    assert f"reads {needs}, which no step before it writes" in caught.value.issues[0].message
    assert "put it after" in caught.value.issues[0].message
    store = RunStore(world["settings"].database)
    try:
        assert store.list_runs(model_name="gen_invalid") == []  # nothing recorded
    finally:
        store.close()
